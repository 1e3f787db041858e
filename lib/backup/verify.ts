/**
 * Proving a backup restores: every record read and checked (older snapshots too), then a
 * restore of the version it described into a scratch directory, with every check a restore
 * makes. Shared by `verify` on this machine and the server's VERIFY.
 *
 * @module
 */
import type { BackupDescription, BackupReader, Tail } from "../backends/backend.ts";
import { restoreBackup } from "./restore.ts";
import { checkInterrupted } from "../fs/interrupt.ts";

/** What a verification found; `restoredVersion` is `undefined` for an empty backup. */
export interface VerifyReport {
  /** Version of the backup's oldest record. */
  firstVersion: number;
  /** Version of its newest record. */
  lastVersion: number;
  /** Records read and checked. */
  records: number;
  /** Versions of the snapshots it holds, oldest first. */
  snapshots: number[];
  /** The version the restore reached. */
  restoredVersion: number | undefined;
  /** Bytes at the end that fail their checks, left out. */
  tail: Tail | undefined;
}

/** What reading every record found, before any restore: a report with no restored version. */
export function readReport(d: Omit<BackupDescription, "url">): VerifyReport {
  return {
    firstVersion: d.firstVersion,
    lastVersion: d.lastVersion,
    records: d.records,
    snapshots: d.snapshots,
    restoredVersion: undefined,
    tail: d.tail,
  };
}

/**
 * Checks the state `describe` reports (a live backup may have grown by the time it
 * restores), restoring into `temp`; throws at the first record or check that fails.
 */
export function verifyBackup(reader: BackupReader, temp: string): VerifyReport {
  const d = reader.describe();
  const report = readReport(d);
  if (d.records === 0) return report;
  // A restore reads the newest snapshot and the changes after it; read the older ones too.
  for (const snapshot of d.snapshots.slice(0, -1)) {
    for (const _ of reader.entries(snapshot)) {
      // Reading checks each record. A snapshot is as large as the database: Ctrl-C stops here.
      checkInterrupted();
    }
  }
  // A restore to a version that it does not reach fails, so this one ends at lastVersion.
  const result = restoreBackup(reader, temp, { toVersion: d.lastVersion });
  return { ...report, restoredVersion: result.version };
}
