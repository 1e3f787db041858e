/**
 * The advice that stops the node names, whole, as the operator pastes it into a shell: the
 * command that starts a new backup or restores the node's newest state, and what to move
 * aside first, from the node's set-up ({@linkcode BackupSetup}). The plugin's messages reach
 * the node's operator in lightningd's log, so the commands are named as it names them.
 *
 * @module
 */
import { cliCommand, nodeCommand } from "../fs/advised_command.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { KEY_FILE } from "../crypto/key_file.ts";
import { LOCK_FILE } from "./lock_file.ts";
import { DATABASE_NAME } from "./database_name.ts";
import type { BackupKeyError } from "../backends/file/encryption.ts";

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
 * `setup` (a server's refusal, read in the node's log), placeholders. The copies are never
 * said to lag: a damaged backup_url's may be intact, the newest history the node has.
 */
export function newBackupAdvice(setup: BackupSetup | undefined): string {
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
    : `; the new backup.lock names none of the old one's copies (${setup.copies.join(", ")}), ` +
      `which are kept: add each anew with "${
        nodeCommand("mirror", `<new url> --lightning-dir ${dir}`)
      }" (--async for ` +
      `an async one)`;
  return `with lightningd stopped, move ${listed} aside, then run "${init}"${why}${copies}`;
}

/**
 * The restore of the node's newest state, whole, with what restore refuses moved aside first:
 * an existing database (the one lightningd opens: the plugin cannot read lightningd's config,
 * so a wallet= file is named by the line), and a node's dir whose backup.lock names copies not
 * given (--also).
 */
export function restoreAdvice(setup: BackupSetup | undefined): string {
  if (setup === undefined) return `"${nodeCommand("restore", "<url> DIR")}"`;
  const also = setup.copies.map((copy) => ` --also ${shellQuote(copy)}`).join("");
  return `move "${setup.dir}/${DATABASE_NAME}" (or the file a wallet= line of lightningd's ` +
    `config names) aside with any -journal or -wal beside it, then run ` +
    `"${nodeCommand("restore", `${shellQuote(setup.url)} ${shellQuote(setup.dir)}${also}`)}"`;
}

/**
 * A key file in the lightning dir `dir` that does not fit the backup at `url`, found at start
 * (a file backup) or at the first write (a remote one): what to do, whole.
 */
export function keyFileAdvice(dir: string, url: string, error: BackupKeyError): string {
  const keyFile = `${dir}/${KEY_FILE}`;
  const rewrite = `"${cliCommand("rekey", `${shellQuote(url)} --key-file ${shellQuote(dir)}`)}" ` +
    `(it asks for the passphrase or identity)`;
  switch (error.problem) {
    case "missing":
      return `Cannot start backup: "${url}" is encrypted and its key file "${keyFile}" is ` +
        `missing: put it back, or write it with ${rewrite}`;
    case "plain":
      return `Cannot start backup: "${url}" is not encrypted, but "${keyFile}" holds a key: ` +
        `a plain and an encrypted backup are never mixed: remove the key file if this ` +
        `backup is meant to be plain, or point backup.lock at the encrypted one`;
    case "other": {
      const ids = error.ids
        ? ` (key id ${error.ids.given}; "${url}" needs ${error.ids.backup})`
        : "";
      return `Cannot start backup: "${keyFile}" holds another backup's key${ids}: put this ` +
        `backup's own key file back, or write it with ${rewrite}`;
    }
  }
}
