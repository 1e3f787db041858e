/**
 * The check that keeps a node from running on a stale backup, or a backup from holding a
 * change the node never committed (see docs/FORMAT.md, "The version check").
 *
 * It runs once, on the first `db_write` after the plugin starts, and compares the version
 * the node's database holds, `M`, with the backup's last version, `B`.
 *
 * @module
 */
import { type BackupSetup, newBackupAdvice, restoreAdvice } from "./setup_advice.ts";

/** The backup's side of the comparison. */
export interface BackupVersions {
  /** `B`: the version of the last stored change. */
  version: number;
  /** The version the backup falls back to when its last change is dropped, if it can be. */
  rewindVersion: number | undefined;
  /** Bytes after the last valid record that fail their checks, if any. */
  tail?: { path: string; offset: number; bytes: number };
}

/** The node's side: one `db_write`. */
export interface FirstWrite {
  /** `N`: the hook's `data_version`. */
  dataVersion: number;
  /** `M` of the bump statement, or `undefined` for a hook without one. */
  bumpedFrom: number | undefined;
}

/**
 * What the version check decides: append (cutting a torn tail first when `cutTail`), rewind the
 * backup's last change, or stop the node, saying why in `message`.
 */
export type VersionVerdict =
  | { action: "append"; message: string; cutTail?: boolean }
  | { action: "rewind"; message: string }
  | { action: "stop"; reason: "lost-state" | "out-of-date" | "damaged"; message: string };

/**
 * Decides what to do with the first write after start.
 *
 * The database's version `M` comes from the bump statement (`AND intval = M`). A hook
 * without a bump (the PRAGMA hooks of a table-rebuilding migration) changes no data and
 * repeats the version the database holds, so for it `M = N`: a repeat of `B` is in step,
 * never taken for a change the node failed to commit.
 *
 * Bytes after the backup's last valid record (`tail`) are a record torn by a crash when the
 * node is at `B`: that append was never acknowledged, so they are cut. When the node is at
 * `B+1`, the node committed a change the backup acknowledged: those bytes were that change,
 * damaged, and the backup cannot be trusted.
 */
export function checkFirstWrite(
  backup: BackupVersions,
  write: FirstWrite,
  setup?: BackupSetup,
): VersionVerdict {
  const m = write.bumpedFrom ?? write.dataVersion;
  const b = backup.version;
  const tail = backup.tail;
  if (m === b) {
    const message = `backup in step with the node at version ${b}`;
    return tail ? { action: "append", message, cutTail: true } : { action: "append", message };
  }
  if (tail && m === b + 1) {
    return {
      action: "stop",
      reason: "damaged",
      message: `Cannot continue: the node's database is at version ${m} but the backup's ` +
        `change ${m} is damaged (${tail.bytes} bytes at offset ${tail.offset} of ` +
        `"${tail.path}" fail their checks); the backup is damaged: ${newBackupAdvice(setup)}`,
    };
  }
  if (m === b - 1 && backup.rewindVersion === m) {
    return {
      action: "rewind",
      message: `dropping change ${b} from the backup: the node stopped before committing it`,
    };
  }
  if (m < b) {
    return {
      action: "stop",
      reason: "lost-state",
      message: `Cannot continue: the node's database is at version ${m} but the backup ` +
        `already holds version ${b}; the node lost state (an old database put back?): stop ` +
        `it and restore its database from the backup${setup === undefined ? " with " : ": "}${
          restoreAdvice(setup)
        }`,
    };
  }
  // With a tail, the changes after B may have been stored and damaged since (a lost sector
  // that took every record after B): the same way out, but not the same cause.
  const cause = tail
    ? `the node ran without the plugin, or the ${tail.bytes} bytes at offset ${tail.offset} ` +
      `of "${tail.path}" that fail their checks held changes after ${b}, damaged`
    : "the node ran without the plugin";
  return {
    action: "stop",
    reason: "out-of-date",
    message: `Cannot continue: the backup holds version ${b} but the node's database is at ` +
      `version ${m}; ${cause}: ${newBackupAdvice(setup)}`,
  };
}
