/**
 * Scratch directories: where a command fetches a backup, restores a database to check it, or
 * builds a base, by default in the system's temporary directory. Each is as large as the
 * node's database, and a kill (a Ctrl-C of a long restore) leaves it there. So each is named
 * `<prefix><pid>-<random>`, its maker holds an flock on it while it lives, and the next maker
 * in the same directory removes those of processes that are gone, by work_path.ts's rules.
 *
 * @module
 */
import { dirname } from "node:path";
import { removeAbandoned } from "./work_path.ts";
import { releaseLock } from "./flock.ts";

/** Every scratch directory's name starts so; the plugin's own scratch holds them too. */
const SCRATCH_PREFIX = "cln-backup-";

const SCRATCH = /^cln-backup-[a-z0-9-]+-([1-9]\d*)-[0-9A-Za-z]+$/;

const held = new Map<string, Deno.FsFile>();
const swept = new Set<string>();

/**
 * Makes and locks a scratch directory named `<prefix><pid>-<random>` in `dir` (default: the
 * system's temporary directory), first removing, once per process and directory, those that
 * killed processes left there. Remove it with {@linkcode removeScratchDir}.
 */
export function makeScratchDir(prefix: `${typeof SCRATCH_PREFIX}${string}-`, dir?: string): string {
  const path = Deno.makeTempDirSync({ dir, prefix: `${prefix}${Deno.pid}-` });
  const handle = Deno.openSync(path, { read: true });
  try {
    handle.lockSync(true);
  } catch (error) {
    handle.close();
    Deno.removeSync(path, { recursive: true });
    throw error;
  }
  held.set(path, handle);
  const parent = dirname(path);
  if (!swept.has(parent)) {
    swept.add(parent);
    removeAbandonedScratch(parent);
  }
  return path;
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
    if (!match || !entry.isDirectory || entry.isSymlink) continue;
    try {
      removeAbandoned(`${dir}/${entry.name}`, Number(match[1]), true);
    } catch {
      // Not ours to remove (another user's), or gone meanwhile.
    }
  }
}
