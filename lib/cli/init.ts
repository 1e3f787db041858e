/**
 * `init <url> [--lightning-dir DIR]`: creates a backup of a node and sets the node up to
 * keep it (backup.lock, the least-privilege launcher, the config line to add).
 *
 * @module
 */
import { backup, DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import { createFileBackup } from "../backends/file/create.ts";
import { existsSync } from "../fs/exists.ts";
import { DATABASE_NAME } from "../backup/restore.ts";
import { LOCK_FILE, type LockFile, readLockFile, writeLockFile } from "../backup/lock_file.ts";
import { LAUNCHER_NAME, launchPlan, writeLauncher } from "./launcher.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { SocketBackend } from "../backends/socket/backend.ts";
import { DEFAULT_RETRY_POLICY } from "../backends/socket/options.ts";
import { checkNetworkDir, checkNotRunning } from "./node_dir.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  fileBackupPath,
  type Output,
  runCommand,
  userPath,
} from "./args.ts";

const ACTION = "Cannot init backup";

export const INIT_HELP = `Usage: cln-backup init <url> [--lightning-dir DIR]

Creates a backup of a node and writes what lightningd needs to keep it:
  1. the backup at <url> (file:///abs/path: a new directory), holding a consistent snapshot
     of DIR/lightningd.sqlite3 at its data_version, taken with SQLite's online backup API;
     empty at version 0 when DIR has no database yet (a node that has not started);
  2. DIR/cln-backup-plugin, the launch script lightningd runs: Deno named by absolute path,
     the plugin allowed to read only backup.lock and the backup and to write only the backup;
  3. DIR/backup.lock, {"backend_url": "<url>"}, which tells the plugin where the backup is.
It ends with the line to add to the lightningd config: important-plugin=<DIR>/cln-backup-plugin.

Options:
  --lightning-dir DIR  the network directory lightningd runs plugins in, where hsm_secret and
                       lightningd.sqlite3 live (for example ~/.lightning/bitcoin); default:
                       the current directory
  -h, --help           show this help

It refuses, changing nothing:
  - a backup that already exists at <url>, or a backup.lock already in DIR;
  - a lightningd running on DIR: it connects to DIR/lightning-rpc (a running lightningd
    accepts; a socket left by a dead one refuses) and reads the pid file lightningd keeps in
    the base dir (DIR/../lightningd-<network>.pid), checking in /proc that the process is a
    lightningd;
  - DIR that looks like the base lightning dir (~/.lightning) rather than a network
    directory: no hsm_secret or lightningd.sqlite3, but network subdirectories (bitcoin,
    testnet, signet, regtest, ...) or a config file. It names the directory to use instead.
A step that fails undoes the ones before it.`;

const SPEC: CommandSpec = {
  name: "init",
  help: INIT_HELP,
  options: { "lightning-dir": { type: "string" } },
  positionals: ["url"],
};

/** Copies the database consistently into `copy`; returns the version it holds. */
async function snapshotDatabase(database: string, copy: string): Promise<number> {
  const source = new DatabaseSync(database, { readOnly: true });
  try {
    await backup(source, copy);
  } finally {
    source.close();
  }
  const db = new DatabaseSync(copy, { readOnly: true });
  let version: number | undefined;
  try {
    const row = db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get();
    version = row === undefined ? undefined : Number(row.intval);
  } catch {
    // No vars table: not a lightningd database, refused below.
  } finally {
    db.close();
  }
  if (version === undefined || !Number.isSafeInteger(version) || version < 0) {
    throw new Error(
      `${ACTION}: "${database}" holds no vars.data_version, so it is not a lightningd ` +
        `database: check --lightning-dir`,
    );
  }
  return version;
}

function removeIfExists(path: string): void {
  if (existsSync(path)) Deno.removeSync(path, { recursive: true });
}

/**
 * Writes the launcher, then `backup.lock` (last: its presence marks a finished set-up) for
 * the backup `lock` names, which exists already. On failure it removes what it wrote and
 * calls `undo`, so nothing half-made is left. Returns the launcher's path.
 */
export function installPlugin(dir: string, lock: LockFile, undo: () => void): string {
  const launcherPath = `${dir}/${LAUNCHER_NAME}`;
  const hadLauncher = existsSync(launcherPath);
  try {
    const written = writeLauncher(launchPlan({ lightningDir: dir, backendUrl: lock.backend_url }));
    writeLockFile(dir, lock);
    return written;
  } catch (error) {
    // Once backup.lock names the new backup (its rename is the commit point: only the
    // directory sync after it failed), undoing would leave it naming nothing.
    if (lockNames(dir, lock.backend_url)) throw error;
    if (!hadLauncher) removeIfExists(launcherPath);
    undo();
    throw error;
  }
}

function lockNames(dir: string, url: string): boolean {
  try {
    return readLockFile(dir).backend_url === url;
  } catch {
    return false;
  }
}

/** The closing lines of init and upgrade: the config line, last, and why it matters. */
export function printConfigLine(
  output: Output,
  launcher: string,
  deno: string = Deno.execPath(),
): void {
  if (deno.includes("/_npx/")) {
    output.err(
      `Warning: the launcher runs Deno from npx's cache ("${deno}"), which npm may clean ` +
        `at any time, and then lightningd cannot start the plugin: run "npm install ` +
        `deno@2.9.6" in the project and run this again with node_modules/.bin/deno`,
    );
  }
  output.out(
    "Add this line to the lightningd config, then start lightningd. important-plugin makes " +
      "lightningd stop if the plugin dies, instead of running on without a backup:",
  );
  output.out(`important-plugin=${launcher}`);
}

/** Creates the file backup at `path`; returns the version it holds. */
async function createFileBackupOf(database: string, path: string): Promise<number> {
  if (existsSync(path)) {
    throw new Error(
      `${ACTION}: "${path}" already exists: choose a new path, or remove it if it is not ` +
        `a backup you need`,
    );
  }
  if (!existsSync(database)) {
    createFileBackup(path);
    return 0;
  }
  // The copy sits beside the backup: that filesystem must have room for it anyway.
  Deno.mkdirSync(dirname(path), { recursive: true });
  const copy = `${path}.snapshot-${Deno.pid}`;
  try {
    const version = await snapshotDatabase(database, copy);
    createFileBackup(path, { version, path: copy });
    return version;
  } finally {
    for (const leftover of [copy, `${copy}-journal`, `${copy}-wal`, `${copy}-shm`]) {
      removeIfExists(leftover);
    }
  }
}

/**
 * Sends a snapshot of `database` to the empty backup on the server `url` names, as the
 * Python `backup-cli init` does; returns the version it holds (0: no database, nothing sent).
 */
async function sendSnapshotTo(database: string, url: string): Promise<number> {
  let remote: SocketBackend;
  try {
    // An operator at a terminal gets the failure at once, not after a node's patience.
    remote = await SocketBackend.connect(url, { policy: { ...DEFAULT_RETRY_POLICY, retries: 0 } });
  } catch (error) {
    throw new Error(`${ACTION}: ${(error as Error).message}`);
  }
  const tmp = Deno.makeTempDirSync({ prefix: "cln-backup-init-" });
  try {
    const { version } = remote.state();
    if (version !== 0 || remote.state().records !== 0) {
      throw new Error(
        `${ACTION}: the server at ${remote.destination} already holds a backup at version ` +
          `${version}: give this node a new storage directory on the server`,
      );
    }
    if (!existsSync(database)) return 0;
    const copy = `${tmp}/snapshot.sqlite3`;
    const snapshotVersion = await snapshotDatabase(database, copy);
    await remote.storeSnapshot(snapshotVersion, Deno.readFileSync(copy));
    return snapshotVersion;
  } finally {
    remote.close();
    Deno.removeSync(tmp, { recursive: true });
  }
}

export async function init(args: string[], output: Output = consoleOutput): Promise<number> {
  return await runCommand(SPEC, args, output, async ({ values, positionals }) => {
    const [url] = positionals;
    const remote = parseBackupUrl(url).scheme === "socket";
    const path = remote ? undefined : fileBackupPath(url, ACTION);
    const dir = userPath(String(values["lightning-dir"] ?? "."));
    checkNetworkDir(dir, ACTION);
    await checkNotRunning(dir, ACTION);
    if (existsSync(`${dir}/${LOCK_FILE}`)) {
      let current = "";
      let todo = "to start over, move backup.lock aside first";
      try {
        const { backend_url } = readLockFile(dir);
        current = ` (it points to ${backend_url})`;
        if (backend_url.endsWith(".dbak")) {
          todo = `a v1 .dbak of the Python plugin converts with "cln-backup upgrade"; ${todo}`;
        }
      } catch {
        // Unreadable: the path alone says enough.
      }
      throw new Error(
        `${ACTION}: "${dir}/${LOCK_FILE}" already exists${current}: this node has a backup ` +
          `already: ${todo}`,
      );
    }
    const database = `${dir}/${DATABASE_NAME}`;
    const version = path
      ? await createFileBackupOf(database, path)
      : await sendSnapshotTo(database, url);
    // A snapshot on a server stays there: a retry of init is refused until it is moved aside.
    const launcher = installPlugin(dir, { backend_url: url }, () => path && removeIfExists(path));
    const where = path ? `"${path}"` : url;
    output.out(
      existsSync(database)
        ? `Created the backup ${where} from a snapshot of "${database}" at version ${version}`
        : `Created the empty backup ${where} at version 0 ("${dir}" has no database yet)`,
    );
    output.out(`Wrote "${dir}/${LOCK_FILE}" and the launcher "${launcher}"`);
    printConfigLine(output, launcher);
    return Exit.Ok;
  });
}
