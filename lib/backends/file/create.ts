/**
 * Creating a file backup: a new directory, built beside its final path and renamed into
 * place, so a crash never leaves a half-made backup under the name the plugin opens.
 *
 * @module
 */
import { syncDir, writeAll, writeFileDurably } from "../../fs/durable.ts";
import { WRAPPED_KEY_NAME } from "../../crypto/wrapped_key.ts";
import { existsSync, removeIfExists } from "../../fs/exists.ts";
import { createEmptyLog } from "./writer.ts";
import { baseName } from "../../format/layout.ts";
import {
  encodeRecord,
  encodeSnapshotEnd,
  type RecordCipher,
  RecordKind,
} from "../../format/record.ts";
import {
  encodeSegmentHeader,
  newBackupId,
  SEGMENT_HEADER_SIZE,
  type SegmentHeader,
  SegmentKind,
} from "../../format/segment.ts";
import type { DataKey } from "../../crypto/data_key.ts";
import { segmentCipher } from "../../crypto/record_cipher.ts";
import { dirname } from "node:path";
import { claimWorkPath, workPath } from "../../fs/work_path.ts";
import { atStep } from "../../fs/step_seam.ts";
import { nextTurn } from "../../fs/next_turn.ts";
import { readFull } from "../../fs/read_full.ts";

/** Snapshots are stored in parts of this many bytes, so no step holds a whole database. */
export const SNAPSHOT_PART_BYTES = 1024 * 1024;
/**
 * A base is synced every this many parts as it is written, so that its final fsync is short:
 * one fsync of a whole large base holds the disk long enough to delay, by over 100 ms
 * (measured), the plugin's appends syncing beside a compaction.
 */
const SYNC_EVERY_PARTS = 8;

/** A database file to store as the backup's first snapshot. */
export interface SnapshotSource {
  /** The `data_version` the database holds. */
  version: number;
  /** Path of a consistent copy of the database (not the live file). */
  path: string;
}

/** Where a base goes in its backup's chain. */
export interface BasePlace {
  backupId: Uint8Array;
  /** The log that holds (or will hold) the changes after the snapshot. */
  firstLog: number;
  /** An encrypted backup's data key, which seals every record. */
  key?: DataKey;
  /**
   * The cipher of its records, when their place is not a file backup's segment (an S3
   * backup's base binds its object name, lib/backends/s3/object_cipher.ts).
   */
  cipher?: RecordCipher;
}

/**
 * The segment header of the base of `version` at `place`, and the cipher of its records (none
 * in a plain backup). A sealed base binds its first log; an S3 base's own cipher binds its
 * object's name, which fixes that log.
 */
export function baseHeader(
  version: number,
  place: BasePlace,
): { header: SegmentHeader; cipher: RecordCipher | undefined } {
  const { backupId, firstLog, key } = place;
  const header = {
    kind: SegmentKind.Base,
    number: version,
    backupId,
    firstLog,
    keyId: key?.id,
    firstLogBound: key !== undefined && place.cipher === undefined,
  };
  return { header, cipher: place.cipher ?? (key && segmentCipher(key, header)) };
}

/** Writes `base-<version>.clnb` into `dir`, streaming the database file in parts. */
export function writeBase(dir: string, source: SnapshotSource, place: BasePlace): void {
  for (const _ of baseSteps(dir, source, place));
}

/**
 * {@linkcode writeBase}, letting the event loop run between parts: a server builds a node's
 * base while it serves other nodes. Once `closed` aborts, the half-built base is removed at
 * the next part and the signal's reason thrown: the last part, the end and the rename are
 * one synchronous step after the last check, so no base goes in after it aborts.
 */
export async function writeBaseYielding(
  dir: string,
  source: SnapshotSource,
  place: BasePlace,
  closed?: AbortSignal,
): Promise<void> {
  for (const out of baseSteps(dir, source, place)) {
    await nextTurn(out);
    closed?.throwIfAborted();
  }
}

/** writeBase's work, a step a part; each step yields the file it writes. */
function* baseSteps(
  dir: string,
  source: SnapshotSource,
  place: BasePlace,
): Generator<Deno.FsFile> {
  const name = baseName(source.version);
  const tmp = `${dir}/${name}.tmp`;
  const out = Deno.openSync(tmp, { write: true, create: true, truncate: true });
  const input = Deno.openSync(source.path, { read: true });
  const { header, cipher } = baseHeader(source.version, place);
  let offset = SEGMENT_HEADER_SIZE;
  let built = false;
  /** Appends one record; sealed, in an encrypted backup, where it lands. */
  const append = (kind: RecordKind, payload: Uint8Array) => {
    const record = encodeRecord(kind, source.version, payload, cipher && { cipher, offset });
    writeAll(out, record);
    offset += record.length;
  };
  try {
    writeAll(out, encodeSegmentHeader(header));
    const buffer = new Uint8Array(SNAPSHOT_PART_BYTES);
    let total = 0;
    let parts = 0;
    for (;;) {
      const filled = readFull(input, buffer);
      if (filled === 0) break;
      append(RecordKind.SnapshotPart, buffer.subarray(0, filled));
      total += filled;
      if (parts++ === 0) atStep("compact-mid-base");
      if (parts % SYNC_EVERY_PARTS === 0) out.syncDataSync();
      if (filled < buffer.length) break;
      yield out;
    }
    append(RecordKind.SnapshotEnd, encodeSnapshotEnd(total, parts));
    out.syncSync();
    built = true;
  } finally {
    input.close();
    out.close();
    // A large node's half-built base would hold its disk until the next open.
    if (!built) removeIfExists(tmp);
  }
  Deno.renameSync(tmp, `${dir}/${name}`);
  syncDir(dir);
}

/** What makes a new backup encrypted: its data key, the id it binds, and its wrapped key. */
export interface NewEncryption {
  /** The new backup's data key. */
  key: DataKey;
  /** The new backup's id, which the wrapped key and every segment header name. */
  backupId: Uint8Array;
  /** The bytes of `key.json` (lib/crypto/wrapped_key.ts), bound to `backupId`. */
  wrappedKey: Uint8Array;
}

/**
 * Creates a backup directory at `dir`, holding `snapshot` when given, else empty at
 * version 0 (a node that has no database yet); encrypted when `encryption` is given.
 */
export function createFileBackup(
  dir: string,
  snapshot?: SnapshotSource,
  encryption?: NewEncryption,
): void {
  if (existsSync(dir)) {
    throw new Error(
      `Cannot create backup: "${dir}" already exists: choose a new path, or remove it if ` +
        `it is not a backup you need`,
    );
  }
  const building = workPath(dir, "creating");
  Deno.mkdirSync(dirname(building), { recursive: true });
  const claim = claimWorkPath(building, "directory");
  try {
    try {
      const backupId = encryption?.backupId ?? newBackupId();
      const key = encryption?.key;
      if (encryption) writeFileDurably(building, WRAPPED_KEY_NAME, encryption.wrappedKey);
      if (snapshot) writeBase(building, snapshot, { backupId, firstLog: 1, key });
      createEmptyLog(building, backupId, key?.id);
      atStep("create-building");
      renameIntoPlace(building, dir);
    } catch (error) {
      Deno.removeSync(building, { recursive: true });
      throw error;
    }
  } finally {
    claim.close();
  }
  // From the rename on the backup exists; a failed directory sync leaves it for the caller.
  syncDir(dirname(dir));
}

/**
 * Renames the finished backup directory `building` to `dir`. A rename replaces an empty
 * directory but fails on a full one: another process created a backup there meanwhile.
 */
export function renameIntoPlace(building: string, dir: string): void {
  try {
    Deno.renameSync(building, dir);
  } catch (error) {
    if (!existsSync(dir)) throw error;
    throw new Error(
      `Cannot create backup: "${dir}" appeared while this one was being built (another ` +
        `init or upgrade made it): nothing was changed; check what is there, then choose a new ` +
        `path or remove it if it is not a backup you need`,
    );
  }
}
