/**
 * A new backup at any URL, made from a node's database: a consistent copy of the database
 * (SQLite's backup API), then a file backup, an S3 one, or a snapshot sent to a server; on a
 * server, also what an interrupted init of the node left there (lib/cli/left_on_server.ts).
 * Used by `init` and `mirror`.
 *
 * @module
 */
import { backup, DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import { createFileBackup, type NewEncryption } from "../backends/file/create.ts";
import { WRAPPED_KEY_NAME } from "../crypto/wrapped_key.ts";
import { baseName } from "../format/layout.ts";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { credentialIn } from "../backends/socket/credential.ts";
import { GaveUpError, SocketBackend } from "../backends/socket/backend.ts";
import { createS3Backup } from "../backends/s3/create.ts";
import { loadCredentials } from "../backends/s3/credentials.ts";
import { DEFAULT_RETRY_POLICY } from "../backends/socket/options.ts";
import { claimWorkPath, workPath } from "../fs/work_path.ts";
import { atStep } from "../fs/step_seam.ts";
import { fileBackupPath } from "./args.ts";
import { nodeDataVersion, unreadableError } from "./why_unreadable.ts";
import { whyNotLeftOnServer } from "./left_on_server.ts";
import { KEY_FILE, readKeyFile, writeKeyFile } from "../crypto/key_file.ts";
import type { DataKey } from "../crypto/data_key.ts";
import { existingHint } from "./existing.ts";
import { makeScratchDir, removeScratchDir } from "../fs/scratch_dir.ts";

/** How init's refusals start; `mirror` makes its backups here too, with the same words. */
export const INIT_ACTION = "Cannot init backup";
const ACTION = INIT_ACTION;

/** The data_version the database at `path` holds; refuses one that is not lightningd's. */
export function dataVersionOf(path: string, database: string): number {
  const version = nodeDataVersion(path, ACTION, database);
  if (version === undefined) {
    throw new Error(
      `${ACTION}: "${database}" holds no vars.data_version, so it is not a lightningd ` +
        `database: check --lightning-dir`,
    );
  }
  return version;
}

/** Copies the database consistently into `copy`; returns the version it holds. */
export async function snapshotDatabase(database: string, copy: string): Promise<number> {
  let source: DatabaseSync;
  try {
    source = new DatabaseSync(database, { readOnly: true });
  } catch (error) {
    throw new Error(
      // SQLite's message ends with the path, which this one names already.
      `${ACTION}: cannot open "${database}" (${
        (error as Error).message.replace(/: \/.*$/, "")
      }): check that you may read it, or run this as the user lightningd runs as`,
    );
  }
  try {
    // A first read says what stops reading, with SQLite's code; backup() gives its words only.
    source.prepare("SELECT count(*) FROM sqlite_master").get();
    await backup(source, copy);
  } catch (error) {
    throw unreadableError(error, database, ACTION);
  } finally {
    source.close();
  }
  return dataVersionOf(copy, database);
}

/** Creates the backup at `path` from `database`, or empty; returns its version. */
export async function createBackup(
  path: string,
  database: string,
  encryption: NewEncryption | undefined,
): Promise<number> {
  if (!existsSync(database)) {
    createFileBackup(path, undefined, encryption);
    return 0;
  }
  // The copy sits beside the backup: that filesystem must have room for it anyway.
  Deno.mkdirSync(dirname(path), { recursive: true });
  const copy = workPath(path, "snapshot");
  const claim = claimWorkPath(copy, "file");
  try {
    const version = await snapshotDatabase(database, copy);
    atStep("init-snapshot");
    createFileBackup(path, { version, path: copy }, encryption);
    return version;
  } finally {
    for (const leftover of [copy, `${copy}-journal`, `${copy}-wal`, `${copy}-shm`]) {
      removeIfExists(leftover);
    }
    claim.close();
  }
}

/**
 * Creates the S3 backup `url` holding a snapshot of `database` (empty when there is none);
 * returns its version. The keys come from the environment, else from beside backup.lock in
 * `dir` (where the plugin reads them).
 */
async function createS3From(
  database: string,
  url: string,
  dir: string | undefined,
  encryption?: NewEncryption,
): Promise<number> {
  const credentials = loadCredentials(dir);
  if (!existsSync(database)) {
    await createS3Backup(url, credentials, undefined, undefined, encryption);
    return 0;
  }
  const tmp = makeScratchDir("init");
  try {
    const copy = `${tmp}/snapshot.sqlite3`;
    const version = await snapshotDatabase(database, copy);
    await createS3Backup(url, credentials, { version, path: copy }, undefined, encryption);
    return version;
  } finally {
    removeScratchDir(tmp);
  }
}

/**
 * Creates the backup at `url`, of any scheme, holding a snapshot of `database` (empty when
 * there is none); returns its version. Keys and credentials come from beside backup.lock in
 * `dir`, as the plugin reads them. Plain: the node's copies (`--mirror`, `--async`); the
 * node's own backup is made by {@linkcode createOrFind}.
 */
export async function createBackupFrom(
  database: string,
  url: string,
  dir: string,
): Promise<number> {
  switch (parseBackupUrl(url).scheme) {
    case "s3":
      return await createS3From(database, url, dir);
    case "socket":
      return (await sendSnapshotTo(database, url, dir, undefined, false)).version;
    case "file":
      return await createBackup(fileBackupPath(url, ACTION), database, undefined);
  }
}

/** A backup init made, or `found`: what an interrupted init of the node left on a server. */
export interface MadeBackup {
  version: number;
  found: boolean;
}

/**
 * The server may have stored what init sent, though its answer never came: a rerun of init
 * finds it there (an encrypted one with the key file this init leaves).
 */
export class MayHaveStoredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MayHaveStoredError";
  }
}

/** An encrypted init's key: made anew, or, for what an interrupted init left, checked. */
export interface InitKey {
  /** Makes a new data key and its wrapping, asking for the passphrase if need be. */
  make(): Promise<NewEncryption>;
  /**
   * Why the backup an interrupted init left, copied to `dir`, does not open with the secret
   * this init was given (its key.json), if it does not.
   */
  whyNotOpened(dir: string): Promise<string | undefined>;
}

/**
 * {@linkcode createBackupFrom} for the node's own destination, which on a server may also be
 * found as an interrupted init of the node left it (lib/cli/left_on_server.ts). Only there: a
 * copy found so could be the same backup under another name. Encrypted with a key `initKey`
 * makes, written to `dir`'s key file before the backup it opens exists; on a server, only once
 * its backup is known to be empty: a key an interrupted init left there opens what it left.
 */
export async function createOrFind(
  database: string,
  url: string,
  dir: string,
  initKey?: InitKey,
): Promise<MadeBackup> {
  const scheme = parseBackupUrl(url).scheme;
  if (scheme === "socket") return await sendSnapshotTo(database, url, dir, initKey, true);
  const encryption = await initKey?.make();
  // The key file first: an init killed after the backup is made finds it beside it.
  if (encryption) writeKeyFile(dir, encryption.key);
  const version = scheme === "s3"
    ? await createS3From(database, url, dir, encryption)
    : await createBackup(fileBackupPath(url, ACTION), database, encryption);
  return { version, found: false };
}

/**
 * Sends a snapshot of `database` to the empty backup on the server `url` names, as the
 * Python `backup-cli init` does, and returns the version it holds (0: no database, nothing
 * sent); or, when `mayFind`, finds there what an interrupted init of this node left. With
 * `initKey`, the snapshot is sealed here with the key it makes, which goes to `dir`'s key file
 * first, and sent with the wrapped key (wire v2).
 */
async function sendSnapshotTo(
  database: string,
  url: string,
  dir: string,
  initKey: InitKey | undefined,
  mayFind: boolean,
): Promise<MadeBackup> {
  let remote: SocketBackend;
  try {
    // An operator at a terminal gets the failure at once, not after a node's patience.
    remote = await SocketBackend.connect(url, {
      policy: { ...DEFAULT_RETRY_POLICY, retries: 0 },
      credential: credentialIn(dir),
    });
  } catch (error) {
    throw new Error(`${ACTION}: ${(error as Error).message}`);
  }
  const tmp = makeScratchDir("init");
  try {
    const { version, records } = remote.state();
    const copy = `${tmp}/snapshot.sqlite3`;
    if (version !== 0 || records !== 0) {
      // The Python server serves one connection at a time: the look needs its own.
      remote.close();
      const why = mayFind
        ? await whyNotLeft(url, dir, database, { version, records }, initKey, tmp)
        : "";
      if (why === undefined) return { version, found: true };
      throw new Error(
        `${ACTION}: the server at ${remote.destination} already holds a backup at version ` +
          `${version}${why}: give this node a new storage directory on the server` +
          existingHint(version, database),
      );
    }
    const encryption = await initKey?.make();
    if (encryption) {
      writeKeyFile(dir, encryption.key);
      const sent = sendSealed(remote, database, `${tmp}/sealed`, encryption);
      return { version: await mayHaveStored(sent, mayFind), found: false };
    }
    if (!existsSync(database)) return { version: 0, found: false };
    const snapshotVersion = await snapshotDatabase(database, copy);
    await mayHaveStored(remote.storeSnapshotFile(snapshotVersion, copy, tmp), mayFind);
    return { version: snapshotVersion, found: false };
  } finally {
    remote.close();
    removeScratchDir(tmp);
  }
}

/**
 * `sending`, whose failure to hear back (the connection lost while the server made the base,
 * perhaps) is a {@linkcode MayHaveStoredError}: the server may hold the snapshot all the same.
 */
async function mayHaveStored<T>(sending: Promise<T>, mayFind: boolean): Promise<T> {
  try {
    return await sending;
  } catch (error) {
    if (!(error instanceof GaveUpError)) throw error;
    // Only init looks for it on a rerun (a copy found so could be another destination).
    const todo = mayFind
      ? "run this init again: while the database is unchanged it finds it there, else it " +
        "sends it anew"
      : "if a second try finds that backup not empty, give this destination a new storage " +
        "directory on the server";
    throw new MayHaveStoredError(
      `${ACTION}: ${error.message}; the server may have stored the snapshot all the same: ` +
        todo,
    );
  }
}

/**
 * Why the backup the server holds (`held`) is not what an interrupted init of the node at
 * `dir` left, as a clause for the refusal; `undefined` when it is. An encrypted init (with
 * `initKey`) takes over only a backup that opens with the key an interrupted init left in
 * `dir`, whose key.json opens with the secret this init was given. Works in `scratch`.
 */
async function whyNotLeft(
  url: string,
  dir: string,
  database: string,
  held: { version: number; records: number },
  initKey: InitKey | undefined,
  scratch: string,
): Promise<string | undefined> {
  const not = ", not what an interrupted init of this node leaves";
  const key = initKey ? await keyLeftIn(dir) : undefined;
  if (initKey && !key) {
    return `${not} that this init can take over (an encrypted one opens with the key an ` +
      `interrupted init leaves in "${dir}/${KEY_FILE}", and there is none)`;
  }
  if (!existsSync(database)) return `${not} (this node has no database yet)`;
  if (held.records !== 1) {
    return `${not} (it holds ${held.records} records; an interrupted init leaves one, its snapshot)`;
  }
  const copy = `${scratch}/snapshot.sqlite3`;
  const version = await snapshotDatabase(database, copy);
  if (version !== held.version) {
    return `${not} (the database is at version ${version}: did lightningd run since?)`;
  }
  let why: string | undefined;
  try {
    why = await whyNotLeftOnServer(
      url,
      dir,
      copy,
      version,
      scratch,
      key && {
        key,
        whyNotOpened: initKey!.whyNotOpened,
      },
    );
  } catch (error) {
    return `${not} (it could not be compared with the database: ${(error as Error).message})`;
  }
  return why === undefined ? undefined : `${not} (${why})`;
}

/** The key in `dir`'s key file, where an interrupted encrypted init leaves it; else none. */
async function keyLeftIn(dir: string): Promise<DataKey | undefined> {
  try {
    return await readKeyFile(dir);
  } catch {
    // Unreadable or no key: none an init left that can open anything.
    return undefined;
  }
}

/**
 * Seals a snapshot of `database` (none: an empty backup) as a file backup would, in `work`,
 * and sends its base and wrapped key to the server, which cannot open them.
 */
async function sendSealed(
  remote: SocketBackend,
  database: string,
  work: string,
  encryption: NewEncryption,
): Promise<number> {
  let snapshot: { version: number; path: string } | undefined;
  if (existsSync(database)) {
    Deno.mkdirSync(`${work}-db`);
    const path = `${work}-db/snapshot.sqlite3`;
    snapshot = { version: await snapshotDatabase(database, path), path };
  }
  createFileBackup(work, snapshot, encryption);
  const version = snapshot?.version ?? 0;
  const base = snapshot ? `${work}/${baseName(version)}` : undefined;
  await remote.initSealed(Deno.readFileSync(`${work}/${WRAPPED_KEY_NAME}`), base, version);
  return version;
}
