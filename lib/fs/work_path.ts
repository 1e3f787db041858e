/**
 * Work paths: what init, mirror, restore and upgrade build beside their final path before
 * renaming (or linking) it into place, named after the process, `<final>.<kind>-<pid>`:
 *
 * - `<backup>.snapshot-PID` (and SQLite's `-journal`): init's or mirror's copy of the node's
 *   database;
 * - `<backup>.creating-PID`: init's or mirror's backup directory before its rename;
 *   `backup.lock.creating-PID` the content of backup.lock before its link, and
 *   `nodes/NAME/key.creating-PID` a node's key before its link (`server add-node`);
 * - `<database>.restoring-PID`: the database restore builds;
 * - `<backup>.upgrading-PID`: the backup upgrade converts into.
 *
 * A `kill -9` leaves them behind, and each can be a whole database. The process holds an
 * exclusive `flock` on each for as long as it works on it (the kernel drops the lock when the
 * process dies), and a later command removes a leftover only when all of these hold:
 *
 * 1. its name has that form (a `-journal`, `-wal` or `-shm` suffix allowed), with a number
 *    a pid can be (an operator's `db.snapshot-20240601` is kept), and it is a regular file or
 *    a directory, not a symlink;
 * 2. the pid in its name is not this process, nor a running process here where `/proc` can
 *    be read (`/proc/<pid>` is present). A pid that is running is kept, even when it was
 *    reused by an unrelated program: keeping a stale file is safe, removing a live one is not;
 * 3. its lock can be taken, so no live process holds it (this covers a process in another pid
 *    namespace sharing the file system); it is removed while the lock is held.
 *
 * Rule 3 alone tells a live maker from a dead one; rule 2 is a second guard where it can be
 * checked. Without `/proc` (not Linux), or without the right to read it (Deno grants `/proc`
 * only with `--allow-all`, which `backup-cli` never gives), rule 3 decides.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { existsSync, removeIfExists } from "./exists.ts";
import { explainOsError } from "./os_error.ts";
import { releaseLock, tryLock } from "./flock.ts";

/** The kinds of work paths, and the command that makes each. */
const KINDS = {
  snapshot: "init or mirror",
  creating: "init or mirror",
  restoring: "restore",
  upgrading: "upgrade",
} as const;
export type WorkKind = keyof typeof KINDS;

const LEFTOVER = /^(.+)\.(snapshot|creating|restoring|upgrading)-([1-9]\d*)(-journal|-wal|-shm)?$/;
/** Linux's PID_MAX_LIMIT: a larger number (a date, say) is the operator's name, not a pid. */
export const PID_MAX = 4 * 1024 * 1024;

/** The work path of this process for `path`. */
export function workPath(path: string, kind: WorkKind): string {
  return `${path}.${kind}-${Deno.pid}`;
}

/**
 * Creates `work` (a file, of `mode` when given, or a directory of mode 0700) and locks it; the
 * caller closes the handle once the work is renamed into place or removed. Anything already
 * there carries this process's pid, so a killed process that had our pid left it: it is replaced.
 */
export function claimWorkPath(
  work: string,
  type: "file" | "directory",
  mode?: number,
): Deno.FsFile {
  // Until it is locked, another command's removeLeftovers that cannot read /proc (backup-cli)
  // may take it for a killed run's and remove it: then it is made again.
  for (let attempt = 1;; attempt++) {
    removeIfExists(work);
    // A backup being built holds the node's database: its owner's alone, as lightningd's
    // own directory is (whatever the umask).
    if (type === "directory") Deno.mkdirSync(work, { mode: 0o700 });
    const handle = Deno.openSync(
      work,
      type === "file" ? { write: true, createNew: true, mode } : { read: true },
    );
    try {
      handle.lockSync(true);
      if (stillAt(work, handle)) return handle;
    } catch (error) {
      releaseLock(handle);
      throw error;
    }
    releaseLock(handle);
    if (attempt === 5) {
      throw new Error(`"${work}" was removed as it was made, again: another process removes it`);
    }
  }
}

/** Whether `path` is still the file or directory `handle` has open. */
export function stillAt(path: string, handle: Deno.FsFile): boolean {
  let now: Deno.FileInfo;
  try {
    now = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  const open = handle.statSync();
  return now.dev === open.dev && now.ino === open.ino;
}

/** Whether `pid` runs here; `false` where `/proc` cannot be read (rule 3 then decides). */
function isRunning(pid: number): boolean {
  try {
    return existsSync(`/proc/${pid}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return false;
    throw error;
  }
}

/**
 * Removes `path`, made by process `pid`, when that process is gone (rules 2 and 3 above):
 * whether it did. Rule 1, the name's form, is the caller's.
 */
export function removeAbandoned(path: string, pid: number, isDirectory: boolean): boolean {
  if (pid === Deno.pid || isRunning(pid)) return false;
  const handle = Deno.openSync(path, { read: true });
  if (!tryLock(handle)) return false;
  try {
    Deno.removeSync(path, { recursive: isDirectory });
    return true;
  } finally {
    releaseLock(handle);
  }
}

/**
 * Removes from `dir` the work paths of processes that are gone (the rules are above); returns one
 * line for each removed, or that could not be removed.
 */
export function removeLeftovers(dir: string): string[] {
  return removeFound(dir, undefined);
}

/**
 * Removes the work paths of gone processes for the final path `path` alone, beside it: a
 * destination's directory may be a NAS share that other hosts' commands write to, whose pids
 * are not running here and whose flocks may not reach this host (NFS with `nolock` or
 * `local_lock`), so another name's work path there may be in progress.
 */
export function removeLeftoversOf(path: string, maker?: string): string[] {
  return removeFound(dirname(path), basename(path), maker);
}

/**
 * {@linkcode removeLeftovers} in `dir`, of the final path `dir/of` alone when given, named the
 * work of `maker` when given (of the command that makes its kind otherwise).
 */
function removeFound(dir: string, of: string | undefined, maker?: string): string[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return []; // An unreadable directory: the command's own steps report it.
  }
  const lines: string[] = [];
  // Main entries first: a SQLite companion file goes only once its database is gone.
  const found = entries.flatMap((entry) => {
    const match = LEFTOVER.exec(entry.name);
    if (!match || entry.isSymlink || !(entry.isFile || entry.isDirectory)) return [];
    if (Number(match[3]) > PID_MAX || (of !== undefined && match[1] !== of)) return [];
    if (match[4] !== undefined && !entry.isFile) return [];
    return [{ entry, kind: match[2] as WorkKind, pid: Number(match[3]), companion: match[4] }];
  }).sort((a, b) => Number(a.companion !== undefined) - Number(b.companion !== undefined));
  for (const { entry, kind, pid, companion } of found) {
    const path = `${dir}/${entry.name}`;
    if (companion !== undefined && existsSync(path.slice(0, -companion.length))) continue;
    const left = `left by process ${pid}, a killed ${maker ?? KINDS[kind]}`;
    try {
      if (removeAbandoned(path, pid, entry.isDirectory)) lines.push(`Removed "${path}", ${left}`);
    } catch (error) {
      const why = explainOsError(error) ?? `${(error as Error).message}: remove it by hand`;
      lines.push(`Could not remove "${path}", ${left}: ${why}`);
    }
  }
  return lines;
}
