/**
 * What an interrupted init left, and whether this init may finish it: a file backup holding just
 * a snapshot at the database's version, encrypted alike and opened by the secret given now.
 *
 * @module
 */
import { pathToFileURL } from "node:url";
import { readChain } from "../format/chain.ts";
import { sameBytes } from "../crypto/data_key.ts";
import { UnlockError, wrapsOf } from "../crypto/wrapped_key.ts";
import { KEY_FILE, readKeyFile } from "../crypto/key_file.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { backupKind } from "../backends/open.ts";
import type { BackupDescription } from "../backends/backend.ts";
import { readLayout } from "../format/layout.ts";
import { existsSync } from "../fs/exists.ts";
import { unlockDir } from "./unlock.ts";
import { readWrappedKey } from "../crypto/wrapped_key_file.ts";
import { givenPassphrase, type Prompt } from "./secrets.ts";
import { dataVersionOf, INIT_ACTION as ACTION, snapshotDatabase } from "./new_backup.ts";
import { holdsOnly } from "./left_on_server.ts";
import type { DataKey } from "../crypto/data_key.ts";
import { makeScratchDir, removeScratchDir } from "../fs/scratch_dir.ts";

/**
 * Whether the backup at `path` is what an init killed after creating it and before writing
 * backup.lock leaves: a cln-backup directory holding a snapshot at the database's version and
 * no change (for a node with no database: nothing, at version 0). Then init finishes the
 * set-up on it; otherwise this says why not.
 */
export function leftByKilledInit(
  path: string,
  database: string,
): { version: number } | { why: string } {
  const notBackup = { why: " and is not a cln-backup backup" };
  if (backupKind(path) !== "directory" || readLayout(path).logs.length === 0) return notBackup;
  const version = existsSync(database) ? dataVersionOf(database, database) : 0;
  let found: BackupDescription;
  const reader = new FileBackupReader(pathToFileURL(path).href, path);
  try {
    found = reader.describe();
  } catch {
    return notBackup;
  } finally {
    reader.close();
  }
  const snapshots = existsSync(database) ? [version] : [];
  if (
    found.lastVersion === version && found.tornBytes === 0 &&
    found.snapshots.join() === snapshots.join()
  ) {
    return { version };
  }
  return {
    why: `, a backup of versions ${found.firstVersion} to ${found.lastVersion}, not what an ` +
      `interrupted init of this node leaves (a snapshot at the database's version ${version} ` +
      `and no change)`,
  };
}

/**
 * Why the snapshot an interrupted init left at `path` (at `version`, read with `key` when
 * encrypted) is not one of `database` as it is now, as a clause for the refusal; `undefined`
 * when it is. Another node's backup at the same version has the same shape, and the plugin's
 * version check would let this node append its changes to that node's snapshot. lightningd
 * changes data_version with every commit, so the database is still the one the snapshot was
 * taken of, and a new snapshot of it holds the same bytes (as on a server, left_on_server.ts).
 */
export async function whyNotSnapshotOf(
  path: string,
  database: string,
  version: number,
  key: DataKey | undefined,
): Promise<string | undefined> {
  if (!existsSync(database)) return undefined; // An empty backup: nothing to compare.
  const scratch = makeScratchDir("init");
  const reader = new FileBackupReader(pathToFileURL(path).href, path, { key });
  try {
    const copy = `${scratch}/snapshot.sqlite3`;
    const now = await snapshotDatabase(database, copy);
    if (now === version && holdsOnly(reader, copy, version, key !== undefined)) return undefined;
  } finally {
    reader.close();
    removeScratchDir(scratch);
  }
  return `, a snapshot at version ${version} of another database than "${database}" (another ` +
    `node's backup, or this node's database was replaced since)`;
}

/**
 * Why the encrypted backup an interrupted init left in `dir` (or its copy) does not open with
 * the secret this init was given, if it does not: the operator keeps that secret, so it must
 * be the one its key.json is wrapped for. A recipient is checked by its wrap (the init holds
 * no identity); a passphrase, given or asked for, by opening the key.
 */
export async function whyNotOpened(
  dir: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
): Promise<string | undefined> {
  const redo = "give the one the interrupted init was given, or remove it and run init again";
  const recipient = typeof values.recipient === "string" ? values.recipient : undefined;
  if (recipient !== undefined) {
    if (!wrapsOf(readWrappedKey(dir)).recipients.includes(recipient)) {
      return `its key is not wrapped for the recipient given, ${recipient}: ${redo}`;
    }
    if (givenPassphrase(values["passphrase-file"]) === undefined) return undefined;
  }
  try {
    await unlockDir(dir, values, prompt);
  } catch (error) {
    if (!(error instanceof UnlockError)) throw error;
    // The reason alone: this init's own line says what it could not do.
    const why = error.message.replace(/^Cannot unlock backup: /, "");
    return `its key does not open: ${why}; ${redo}`;
  }
  return undefined;
}

/** Checks that an interrupted init's backup fits this one: encrypted alike, its key at hand. */
export async function checkLeftEncryption(
  path: string,
  dir: string,
  encrypt: boolean,
): Promise<void> {
  const keyId = readChain(path).keyId;
  const redo = `remove "${path}" and run init again`;
  if ((keyId !== undefined) !== encrypt) {
    throw new Error(
      `${ACTION}: "${path}", which an interrupted init left, is ${
        keyId ? "encrypted" : "plain"
      }, and this init ${encrypt ? "encrypts" : "does not encrypt"}: ${redo}`,
    );
  }
  const key = keyId && await readKeyFile(dir);
  if (keyId && !(key && sameBytes(key.id, keyId))) {
    throw new Error(
      `${ACTION}: "${path}", which an interrupted init left, is encrypted with a key that ` +
        `"${dir}/${KEY_FILE}" does not hold: ${redo}`,
    );
  }
}
