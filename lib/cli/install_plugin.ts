/**
 * Setting a node up to keep its backup, as init, upgrade and mirror finish: the launcher, then
 * backup.lock, written so that a failure leaves nothing half-made, and the config line to add.
 *
 * @module
 */
import { existsSync, removeIfExists } from "../fs/exists.ts";
import {
  createLockFile,
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
    // Once backup.lock names the new backup (its rename is the commit point: only the
    // directory sync after it failed), undoing would leave it naming nothing.
    if (lockNames(dir, lock.backend_url)) throw error;
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
