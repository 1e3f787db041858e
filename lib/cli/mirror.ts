/**
 * `mirror <url> [--lightning-dir DIR] [--async]`: adds a destination to a node's backup.
 * Copies must start equal, so with lightningd stopped it creates the new backup from a
 * snapshot of the node's database, as `init` does, then adds it to `mirror_urls` (with
 * `--async`, `async_urls`) in backup.lock with its backup id (`backup_ids`, which ties the copy
 * to that backup), and rewrites the launcher to grant it. For a copy named already without its
 * id, it records that id.
 *
 * @module
 */
import { userPath } from "../fs/user_path.ts";
import { LOCK_FILE, type LockFile, readLockFile, writeLockFile } from "../backup/lock_file.ts";
import { nodeDatabase } from "./node_database.ts";
import { copyBackupIds, lockDestinations } from "../backends/multi/mirrors.ts";
import { destinationBackupId, tiedLock } from "./copy_id.ts";
import { backupKind, openReader } from "../backends/open.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { parseBackupUrl, sameBackup } from "../backends/url.ts";
import { KEY_FILE } from "../crypto/key_file.ts";
import { checkPluginCredentials } from "../backends/s3/credentials.ts";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { nodeDataVersion } from "./why_unreadable.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  fileBackupPath,
  type Output,
  runCommand,
} from "./args.ts";
import { installPlugin, printConfigLine } from "./install_plugin.ts";
import { checkLaunchable } from "./launcher.ts";
import { createBackupFrom } from "./new_backup.ts";
import { checkNetworkDir, checkNotRunning } from "./node_dir.ts";
import { lockForSetup } from "./setup_lock.ts";
import { removeLeftovers, removeLeftoversOf } from "../fs/work_path.ts";
import { type DeviceOf, deviceOf } from "../backup/same_disk.ts";
import { warnIfSameDisk } from "./same_disk_warning.ts";

const ACTION = "Cannot add the destination";

const MIRROR_HELP = `Usage: cln-backup mirror <url> [--lightning-dir DIR] [--async]

Adds <url> (file:///abs/path, s3://bucket/prefix or socket:host:port) as another destination
of the node's backup, so that each change is stored there too before lightningd commits it.
With lightningd stopped, it creates the backup at <url> from a snapshot of
DIR/lightningd.sqlite3 (copies must start equal), adds <url> to "mirror_urls" in
DIR/backup.lock, and rewrites the launcher DIR/cln-backup-plugin to grant it. S3 keys come
from AWS_* or DIR/backup-s3.credentials, a server's credential from DIR/backup.credential.

It records the new backup's id in "backup_ids" in DIR/backup.lock: the plugin then refuses to
write the node's changes into another backup found at <url> (another node's, a mount swapped).
Given a copy backup.lock names already without its id (one made by an older cln-backup), it
records the id of the backup there and changes nothing else (lightningd may run): do so once you
know it holds this node's copy ("cln-backup doctor" warns of a copy without one).

When the new copy leaves every destination a file on the database's filesystem, it warns on
stderr: one disk failure would lose them all (a copy on another disk, or a remote one, saves
them).

It refuses while lightningd runs, when <url> is a destination already or holds a backup, when
the file backup in backup.lock is not at the database's version (run "cln-backup doctor"), and
for an encrypted backup. A failure leaves backup.lock as it was.

Options:
  --lightning-dir DIR  the network directory holding backup.lock; default: the current
                       directory
  --async              add it to "async_urls" instead: a copy the node never waits for,
                       which follows the first destination in the background
  -h, --help           show this help`;

export const MIRROR_SPEC: CommandSpec = {
  name: "mirror",
  action: ACTION,
  help: MIRROR_HELP,
  options: { "lightning-dir": { type: "string" }, async: { type: "boolean" } },
  positionals: ["url"],
};

/** The version of the node's database; 0 when it has none yet. */
function databaseVersion(path: string): number {
  if (!existsSync(path)) return 0;
  const version = nodeDataVersion(path, ACTION);
  if (version === undefined) {
    throw new Error(`${ACTION}: "${path}" is not a lightningd database (no data_version)`);
  }
  return version;
}

export async function mirror(
  args: string[],
  output: Output = consoleOutput,
  device: DeviceOf = deviceOf,
): Promise<number> {
  return await runCommand(MIRROR_SPEC, args, output, async ({ values, positionals }) => {
    const url = positionals[0];
    parseBackupUrl(url);
    const dir = userPath(String(values["lightning-dir"] ?? "."));
    checkNetworkDir(dir, ACTION);
    using _setup = lockForSetup(dir, ACTION);
    if (!existsSync(`${dir}/${LOCK_FILE}`)) {
      throw new Error(
        `${ACTION}: no ${LOCK_FILE} in "${dir}": give the node's network directory with ` +
          `--lightning-dir, or make its backup with init first`,
      );
    }
    const lock = readLockFile(dir);
    const first = parseBackupUrl(lock.backend_url);
    if (first.scheme === "file" && backupKind(first.path) === "v1") {
      // The plugin would refuse it at its start, and a copy would not follow the Python one's.
      throw new Error(
        `${ACTION}: ${lock.backend_url} is the Python plugin's v1 backup, which this plugin ` +
          `does not append to: convert it first with ` +
          `"${cliCommand("upgrade", `--lightning-dir ${shellQuote(dir)}`)}", then add the copy`,
      );
    }
    const { sync, async } = lockDestinations(lock);
    // However it is spelled (a trailing "/", a path through a symlink): the same backup.
    const named = [...sync, ...async].find((destination) => sameBackup(destination, url));
    if (named !== undefined && named !== lock.backend_url && !copyBackupIds(lock).has(named)) {
      return await tie(named, lock, dir, output);
    }
    if (named !== undefined) {
      throw new Error(
        `${ACTION}: "${dir}/${LOCK_FILE}" names ${url} already${
          named === url ? "" : ` (as ${named})`
        }: nothing to do`,
      );
    }
    if (existsSync(`${dir}/${KEY_FILE}`)) {
      throw new Error(
        `${ACTION}: the backup is encrypted, and a second copy of an encrypted backup is not ` +
          `made yet: keep one destination, or copy the backup directory as a whole`,
      );
    }
    await checkNotRunning(dir, ACTION);
    if (parseBackupUrl(url).scheme === "s3") checkPluginCredentials(dir, ACTION);
    const database = nodeDatabase(dir, ACTION);
    const version = databaseVersion(database);
    // A remote first destination is compared by the plugin at its next start.
    if (parseBackupUrl(lock.backend_url).scheme === "file") {
      const held = openReader(lock.backend_url).describe().lastVersion;
      if (held !== version && held !== version + 1) {
        throw new Error(
          `${ACTION}: ${lock.backend_url} holds version ${held} and the database ${version}: ` +
            `the copies must start equal: run "${
              cliCommand("doctor", `--lightning-dir ${shellQuote(dir)}`)
            }" and ` +
            `fix that first`,
        );
      }
    }
    const path = parseBackupUrl(url).scheme === "file" ? fileBackupPath(url, ACTION) : undefined;
    // A killed mirror's work paths, each a copy of the node's database, are beside the copy.
    const removed = [
      ...removeLeftovers(dir),
      ...path ? removeLeftoversOf(path) : [],
    ];
    for (const line of removed) output.out(line);
    if (path !== undefined && existsSync(path)) {
      throw new Error(
        `${ACTION}: "${path}" already exists: choose a new path, or remove it if it is not a ` +
          `backup you need`,
      );
    }
    const key = values.async ? "async_urls" : "mirror_urls";
    const list = [...(values.async ? async : sync.slice(1)), url];
    const next = { ...lock, [key]: list };
    checkLaunchable(dir, next);
    const created = await createBackupFrom(database, url, dir);
    const id = await destinationBackupId(url, dir).catch((error: Error) => {
      // The copy works untied, as one made before ids were recorded; a rerun ties it.
      output.err(
        `Could not read the backup id of ${url} (${error.message}): run "${
          cliCommand("mirror", `${shellQuote(url)} --lightning-dir ${shellQuote(dir)}`)
        }" again to tie it`,
      );
      return undefined;
    });
    const launcher = installPlugin(
      dir,
      tiedLock(next, url, id),
      "replace",
      () => path !== undefined && removeIfExists(path),
    );
    const made = existsSync(database)
      ? `Created the backup ${url} from "${database}" at version ${created}`
      : `Created the empty backup ${url} at version 0 (no database at "${database}" yet)`;
    output.out(
      `${made}, and added it to ` +
        `"${key}" in "${dir}/${LOCK_FILE}" (${sync.length + async.length + 1} destinations)` +
        (id === undefined ? "" : `, tied to its backup id ${id}`),
    );
    // A copy on the first one's disk adds none that outlives the database's.
    warnIfSameDisk(next, dir, database, output, device);
    printConfigLine(output, launcher);
    return Exit.Ok;
  });
}

/**
 * Records in backup.lock's `backup_ids` the id of the backup the copy `url` holds (a copy made
 * before they were recorded): the plugin then refuses to write into another backup found there.
 * It is the operator's word that this backup is the node's copy; the copy is not written to.
 */
async function tie(url: string, lock: LockFile, dir: string, output: Output): Promise<number> {
  let id: string | undefined;
  try {
    id = await destinationBackupId(url, dir, true);
  } catch (error) {
    throw new Error(
      `${ACTION}: "${dir}/${LOCK_FILE}" names ${url} already, and its backup id, which this ` +
        `would record, cannot be read: ${(error as Error).message}`,
    );
  }
  if (id === undefined) {
    output.out(
      `${url} is in backup.lock already, and its backup has no id to tie it to (the Python ` +
        `plugin's): nothing to do`,
    );
    return Exit.Ok;
  }
  writeLockFile(dir, tiedLock(lock, url, id));
  output.out(
    `Tied ${url}, in backup.lock already, to the backup it holds, ${id}, in ` +
      `"${dir}/${LOCK_FILE}" ("backup_ids"): the plugin now refuses to write the node's ` +
      `changes into another backup found there`,
  );
  return Exit.Ok;
}
