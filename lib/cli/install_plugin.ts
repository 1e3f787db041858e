/**
 * Setting a node up to keep its backup, as init, upgrade and mirror finish: the launcher, then
 * backup.lock, written so that a failure leaves nothing half-made, and the config line to add.
 *
 * @module
 */
import { dirname } from "node:path";
import { existsSync, removeIfExists, statIfExists } from "../fs/exists.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { fileDestinations } from "../backends/multi/mirrors.ts";
import { KEY_FILE } from "../crypto/key_file.ts";
import { allows, describeUser, nodeUser } from "./doctor/node_user.ts";
import {
  createLockFile,
  LOCK_FILE,
  type LockFile,
  LockFileExists,
  readLockFile,
  writeLockFile,
} from "../backup/lock_file.ts";
import { LAUNCHER_NAME, lockLaunchPlan, writeLauncher } from "./launcher.ts";
import type { Output } from "./args.ts";
import { INIT_ACTION as ACTION } from "./new_backup.ts";

/**
 * Writes the launcher, then `backup.lock` (last: its presence marks a finished set-up) for
 * the backup `lock` names, which exists already. `backup.lock` is created only if there is
 * none ("create", init) or replaced ("replace", upgrade). On failure it puts back the launcher
 * it replaced, removes the one it wrote and calls `undo`, so nothing half-made is left.
 * Returns the launcher's path.
 */
export function installPlugin(
  dir: string,
  lock: LockFile,
  mode: "create" | "replace",
  undo: () => void,
): string {
  const launcherPath = `${dir}/${LAUNCHER_NAME}`;
  const previous = existsSync(launcherPath) ? Deno.readFileSync(launcherPath) : undefined;
  try {
    const written = writeLauncher(lockLaunchPlan(dir, lock));
    if (mode === "create") createLockFile(dir, lock);
    else writeLockFile(dir, lock);
    return written;
  } catch (error) {
    // Once backup.lock is the new one (its rename is the commit point: only the directory
    // sync after it failed), undoing would leave it naming nothing. Its destinations tell:
    // mirror keeps backend_url and adds a copy.
    if (lockIs(dir, lock)) throw error;
    if (previous) {
      Deno.writeFileSync(launcherPath, previous);
      Deno.chmodSync(launcherPath, 0o755);
    } else {
      removeIfExists(launcherPath);
    }
    undo();
    if (error instanceof LockFileExists) {
      let holder = "";
      try {
        holder = ` (it points to ${readLockFile(dir).backend_url})`;
      } catch {
        // Unreadable: the path alone says enough.
      }
      throw new Error(
        `${ACTION}: "${error.path}" appeared while the backup was being made${holder}, ` +
          `written by another process: the new backup was removed and nothing changed; check ` +
          `which backup this node should use, then run this again if needed`,
      );
    }
    throw error;
  }
}

function lockIs(dir: string, lock: LockFile): boolean {
  const urls = (l: LockFile) => JSON.stringify([l.backend_url, l.mirror_urls, l.async_urls]);
  try {
    return urls(readLockFile(dir)) === urls(lock);
  } catch {
    return false;
  }
}

/**
 * Why the plugin, run as lightningd's user, could not open what this process wrote, if it
 * could not: a file backup (made 0700), backup.key (0600) or a backup.lock the umask closed,
 * owned by another user, as when init runs as root for a node that runs as its own user.
 */
function ownershipWarning(launcher: string): string | undefined {
  const dir = dirname(launcher);
  let paths: string[];
  let uid: number | null | undefined;
  const node = nodeUser(dir);
  if (node === undefined) return undefined;
  try {
    // This process's user, as the launcher it wrote says (Deno.uid() needs a permission more).
    uid = statIfExists(launcher)?.uid;
    if (uid == null || node.uid === uid) return undefined;
    paths = [...fileDestinations(readLockFile(dir)), `${dir}/${KEY_FILE}`]
      .filter((path) => statIfExists(path)?.uid === uid);
    // backup.lock is made as the umask says: under 027 or 077, this user's alone too.
    const lock = statIfExists(`${dir}/${LOCK_FILE}`);
    if (lock?.uid === uid && !allows(lock, node, 4)) paths.unshift(`${dir}/${LOCK_FILE}`);
  } catch {
    return undefined; // What cannot be looked at is not this warning's to explain.
  }
  if (paths.length === 0) return undefined;
  return `Warning: this ran as uid ${uid}, but lightningd runs as ${describeUser(node)}, and the ` +
    `plugin could not open what is this user's alone (${
      paths.map((p) => `"${p}"`).join(", ")
    }): give it to that user ("chown -R ${node.uid}:${node.gid} ${
      paths.map(shellQuote).join(" ")
    }"), or run this as that user next time`;
}

/** The closing lines of init and upgrade: the config line, last, and why it matters. */
export function printConfigLine(
  output: Output,
  launcher: string,
  deno: string = Deno.execPath(),
): void {
  const owner = ownershipWarning(launcher);
  if (owner) output.err(owner);
  if (deno.includes("/_npx/")) {
    output.err(
      `Warning: the launcher runs Deno from npx's cache ("${deno}"), which npm may clean ` +
        `at any time, and then lightningd cannot start the plugin: run "npm install ` +
        `--no-save deno@2.9.6" in the checkout and run this again with node_modules/.bin/deno`,
    );
  }
  output.out(
    "Add this line to the lightningd config, then start lightningd. important-plugin makes " +
      "lightningd stop if the plugin dies, instead of running on without a backup:",
  );
  output.out(`important-plugin=${launcher}`);
}
