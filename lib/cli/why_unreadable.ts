/**
 * Why lightningd's database cannot be read by a command that only reads it (init, mirror,
 * doctor), said with what to do. SQLite's own words ("attempt to write a readonly database")
 * name neither the file nor the cause.
 *
 * @module
 */
import { dataVersionAt } from "../sqlite/data_version.ts";

/** SQLITE_BUSY: another connection holds a lock the read needs (extended codes share it). */
const BUSY = 5;
/** SQLITE_CORRUPT: the file is damaged (extended codes share it). */
const CORRUPT = 11;
/** SQLite's words for SQLITE_CORRUPT, all that node:sqlite's backup() gives (no code). */
const MALFORMED = /^database disk image is malformed/;
/** SQLITE_READONLY_ROLLBACK: a hot journal that a read-only connection cannot roll back. */
const READONLY_ROLLBACK = 776;
/** SQLITE_READONLY_RECOVERY: a WAL that a read-only connection cannot recover. */
const READONLY_RECOVERY = 264;

/**
 * What stops reading the database at `path` (the node's, opened read-only), as a clause with
 * what to do; `undefined` for any other error, which says enough itself.
 */
export function whyUnreadable(error: unknown, path: string): string | undefined {
  const code = (error as { errcode?: unknown } | null)?.errcode;
  const message = error instanceof Error ? error.message : "";
  if ((typeof code === "number" && (code & 0xff) === CORRUPT) || MALFORMED.test(message)) {
    return `"${path}" is damaged (${message}), and lightningd cannot run on it either: check ` +
      `the disk it is on, then restore the database from the node's backup ("cln-backup ` +
      `restore")`;
  }
  if (typeof code !== "number") return undefined;
  if (code === READONLY_ROLLBACK || code === READONLY_RECOVERY) {
    const left = code === READONLY_ROLLBACK ? "a hot journal" : "a write-ahead log to recover";
    const file = `${path}-${code === READONLY_ROLLBACK ? "journal" : "wal"}`;
    return `"${path}" has ${left} ("${file}"): lightningd stopped in the middle of a write, ` +
      `which only a writer may roll back: start lightningd and stop it ("lightning-cli ` +
      `stop"), then run this again`;
  }
  if ((code & 0xff) === BUSY) {
    return `"${path}" is locked by another process, a lightningd running with its RPC socket ` +
      `elsewhere (rpc-file) perhaps: stop it ("lightning-cli stop"), then run this again`;
  }
  return undefined;
}

/**
 * `error` from reading the database at `path`, as `action`'s refusal when
 * {@linkcode whyUnreadable} has more to say than SQLite's words.
 */
export function unreadableError(error: unknown, path: string, action: string): unknown {
  const why = whyUnreadable(error, path);
  return why === undefined ? error : new Error(`${action}: ${why}`);
}

/**
 * The data_version of the node's database, read at `path` ({@linkcode dataVersionAt}); what
 * stops the read is `action`'s refusal naming `database` (the node's file `path` may be a
 * copy of).
 */
export function nodeDataVersion(
  path: string,
  action: string,
  database = path,
): number | undefined {
  try {
    return dataVersionAt(path);
  } catch (error) {
    throw unreadableError(error, database, action);
  }
}
