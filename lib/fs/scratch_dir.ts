/**
 * Scratch directories: where a command fetches a backup, restores a database to check it, or
 * builds a base, by default in the system's temporary directory. Each is as large as the
 * node's database, and a kill (a Ctrl-C of a long restore) leaves it there. So each is named
 * `cln-backup-<kind>-<pid>-<random>`, its maker holds an flock on it while it lives, and the
 * next maker in the same directory removes those of processes that are gone, by work_path.ts's
 * rules. Only names of the kinds below are taken: a temporary directory holds the operator's
 * own too (a dated copy of a backup, `cln-backup-mainnet-20241205-copy`).
 *
 * @module
 */
import { dirname } from "node:path";
import { PID_MAX, removeAbandoned, stillAt } from "./work_path.ts";
import { releaseLock } from "./flock.ts";
import { removeIfExists } from "./exists.ts";
import { readableEnv } from "./readable_env.ts";
import { osReason } from "./os_error.ts";

/** What scratch directories are for, which their names say: `cln-backup-<kind>-`. */
const KINDS = [
  "init",
  "verify",
  "compact",
  "existing",
  "fetch",
  "base",
  "s3",
  "s3-copy",
  "s3-compact",
] as const;
export type ScratchKind = typeof KINDS[number];

/**
 * A scratch directory's name: its kind, its maker's pid, `Deno.makeTempDirSync`'s random hex
 * (16 digits less its leading zeros: fewer than 8 once in 4 billion), so a short word that
 * happens to be hex (`dec`) is not taken.
 */
const SCRATCH = new RegExp(`^cln-backup-(?:${KINDS.join("|")})-([1-9]\\d*)-[0-9a-f]{8,16}$`);

const held = new Map<string, Deno.FsFile>();
const swept = new Set<string>();

/**
 * Makes and locks a scratch directory named `cln-backup-<kind>-<pid>-<random>` in `dir`
 * (default: the system's temporary directory); then, once per process and directory, removes
 * those that killed processes left there (after the lock, so the sweep never takes the new
 * one). Remove it with {@linkcode removeScratchDir}.
 */
export function makeScratchDir(kind: ScratchKind, dir?: string): string {
  const prefix = `cln-backup-${kind}-`;
  // Until it is locked, a sweep by another process that cannot read /proc (backup-cli) may
  // take a new one for a killed run's and remove it: then another is made.
  for (let attempt = 1;; attempt++) {
    const path = makeTempDir(dir, `${prefix}${Deno.pid}-`);
    const handle = lockNew(path, attempt < 5);
    if (handle === undefined) continue;
    // A file system without flock (some NFS mounts): a name no sweep takes, as before.
    if (handle === "no locks") return makeTempDir(dir, prefix);
    held.set(path, handle);
    const parent = dirname(path);
    if (!swept.has(parent)) {
      swept.add(parent);
      removeAbandonedScratch(parent);
    }
    return path;
  }
}

/**
 * `Deno.makeTempDirSync` in `dir` (default: the system's temporary directory), whose failure
 * says in which directory, since Deno's names none (`Not a directory (os error 20): tmpdir`).
 */
function makeTempDir(dir: string | undefined, prefix: string): string {
  try {
    return Deno.makeTempDirSync({ dir, prefix });
  } catch (error) {
    // No permission for it is a bug in backup-cli's permission table, which the CLI says.
    if (error instanceof Deno.errors.NotCapable) throw error;
    const why = osReason(error);
    if (dir !== undefined) {
      throw new Error(
        `cannot make a scratch directory in "${dir}": ${why}: check that "${dir}" is a ` +
          `directory this user may write`,
        { cause: error },
      );
    }
    const tmpdir = readableEnv.get("TMPDIR");
    const where = tmpdir === undefined
      ? `the temporary directory (TMPDIR, else "/tmp")`
      : `"${tmpdir}" (TMPDIR)`;
    throw new Error(
      `cannot make a scratch directory in ${where}: ${why}: set TMPDIR to a directory this ` +
        `user may write, with room for a copy of the node's database`,
      { cause: error },
    );
  }
}

/**
 * Locks the scratch directory just made at `path`, returning its handle; `undefined` when a
 * sweep removed it before it was locked and `retry` is allowed (an error else); `"no locks"`,
 * and `path` removed, when its file system refuses an flock (ENOLCK, or EBADF on NFS for a
 * directory opened to read).
 */
function lockNew(path: string, retry: boolean): Deno.FsFile | "no locks" | undefined {
  let handle: Deno.FsFile;
  try {
    handle = Deno.openSync(path, { read: true });
  } catch (error) {
    if (retry && error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    handle.lockSync(true);
  } catch {
    handle.close();
    removeIfExists(path);
    return "no locks";
  }
  let same: boolean;
  try {
    // A sweep that took the lock first removed it, then let go: the lock is on a removed one.
    same = stillAt(path, handle);
  } catch (error) {
    releaseLock(handle);
    throw error;
  }
  if (same) return handle;
  releaseLock(handle);
  if (retry) return undefined;
  throw new Error(`"${path}" was removed as it was made, again: another process removes it`);
}

/** Removes a scratch directory this process made, and releases its lock. */
export function removeScratchDir(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } finally {
    const handle = held.get(path);
    held.delete(path);
    if (handle) releaseLock(handle);
  }
}

/**
 * Removes from `dir` the scratch directories of processes that are gone. Quietly: none is the
 * only copy of anything, and one this user may not remove (another user's, in a shared /tmp)
 * is not ours to report.
 */
function removeAbandonedScratch(dir: string): void {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return;
  }
  for (const entry of entries) {
    const match = SCRATCH.exec(entry.name);
    if (!match || !entry.isDirectory || entry.isSymlink || Number(match[1]) > PID_MAX) continue;
    try {
      removeAbandoned(`${dir}/${entry.name}`, Number(match[1]), true);
    } catch {
      // Not ours to remove (another user's), or gone meanwhile.
    }
  }
}
