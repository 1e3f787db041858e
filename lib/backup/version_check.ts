/**
 * The check that keeps a node from running on a stale backup, or a backup from holding a
 * change the node never committed (see docs/FORMAT.md, "The version check").
 *
 * It runs once, on the first `db_write` after the plugin starts, and compares the version
 * the node's database holds, `M`, with the backup's last version, `B`.
 *
 * @module
 */
import { nodeCommand } from "../fs/advised_command.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { KEY_FILE } from "../crypto/key_file.ts";
import { LOCK_FILE } from "./lock_file.ts";
import { DATABASE_NAME } from "./restore.ts";

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
 * The node's set-up as backup.lock and its lightning dir say it, which the advice of a stop
 * names: the commands to run, whole, and what to move aside first.
 */
export interface BackupSetup {
  /** The lightning dir, where backup.lock is. */
  dir: string;
  /** backup.lock's `backend_url`. */
  url: string;
  /** A file backup's directory: moved aside, its URL is free for init again. */
  path?: string;
  /** The other copies backup.lock names (`mirror_urls`, `async_urls`). */
  copies: readonly string[];
  /** A key file beside backup.lock: init refuses a plain backup beside it. */
  encrypted: boolean;
}

/**
 * With lightningd stopped, the init that starts a new backup from the node's database, and
 * what to move aside first: init refuses a backup at its URL, backup.lock, and (without
 * --encrypt) backup.key. A remote backup cannot be moved aside from here: a new URL. Without
 * `setup` (a server's refusal, read in the node's log), placeholders.
 */
function initAdvice(setup: BackupSetup | undefined): string {
  const todo = "to start a new backup from the current database";
  if (setup === undefined) {
    return `with lightningd stopped, move backup.lock aside (and backup.key, for an ` +
      `encrypted backup: then add --encrypt) and run ` +
      `"${nodeCommand("init", "--lightning-dir DIR <new url>")}" ${todo}`;
  }
  const dir = shellQuote(setup.dir);
  const aside = [
    ...(setup.path === undefined ? [] : [`the backup "${setup.path}"`]),
    `"${setup.dir}/${LOCK_FILE}"`,
    ...(setup.encrypted ? [`"${setup.dir}/${KEY_FILE}"`] : []),
  ];
  const listed = aside.length === 1
    ? aside[0]
    : `${aside.slice(0, -1).join(", ")} and ${aside.at(-1)}`;
  const url = setup.path === undefined ? "<new url>" : shellQuote(setup.url);
  const init = nodeCommand(
    "init",
    `--lightning-dir ${dir} ${url}${setup.encrypted ? " --encrypt" : ""}`,
  );
  const why = setup.path === undefined
    ? ` (init refuses the backup at ${setup.url}, which is kept)`
    : ` ${todo}`;
  const copies = setup.copies.length === 0
    ? ""
    : `; the copies backup.lock names (${setup.copies.join(", ")}) lag as well: add each ` +
      `anew with "${nodeCommand("mirror", `<new url> --lightning-dir ${dir}`)}" (--async for ` +
      `an async one)`;
  return `with lightningd stopped, move ${listed} aside, then run "${init}"${why}${copies}`;
}

/**
 * The restore of the node's newest state, whole, with what restore refuses moved aside first:
 * an existing database (the one lightningd opens: the plugin cannot read lightningd's config,
 * so a wallet= file is named by the line), and a node's dir whose backup.lock names copies not
 * given (--also).
 */
function restoreAdvice(setup: BackupSetup | undefined): string {
  if (setup === undefined) return `"${nodeCommand("restore", "<url> DIR")}"`;
  const also = setup.copies.map((copy) => ` --also ${shellQuote(copy)}`).join("");
  return `move "${setup.dir}/${DATABASE_NAME}" (or the file a wallet= line of lightningd's ` +
    `config names) aside with any -journal or -wal beside it, then run ` +
    `"${nodeCommand("restore", `${shellQuote(setup.url)} ${shellQuote(setup.dir)}${also}`)}"`;
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
        `"${tail.path}" fail their checks); the backup is damaged: ${initAdvice(setup)}`,
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
      `version ${m}; ${cause}: ${initAdvice(setup)}`,
  };
}
