/**
 * Directories a command makes for what it writes, taken back when it fails: a failed command
 * leaves nothing it made (an empty server root would then pass for a real one).
 *
 * @module
 */
import { dirname } from "node:path";

/**
 * Makes `path` and the parents it lacks, each with `mode`; returns those it made, the
 * outermost first (none when `path` was there).
 */
export function makeDirs(path: string, mode: number): string[] {
  // A parent found may be taken back (empty: the other command that made it failed) before
  // its child is made in it: looked for again, it is made here then, and this command's.
  for (let tries = 1;; tries++) {
    try {
      return makeMissing(path, mode);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || tries === 3) throw error;
    }
  }
}

function makeMissing(path: string, mode: number): string[] {
  const missing: string[] = [];
  for (let dir = path;; dir = dirname(dir)) {
    try {
      Deno.statSync(dir);
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    missing.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  const made: string[] = [];
  for (const dir of missing) {
    try {
      Deno.mkdirSync(dir, { mode });
      made.push(dir);
    } catch (error) {
      // Made meanwhile by another command: its own, never taken back here.
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }
  return made;
}

/**
 * Removes the directories {@linkcode makeDirs} made, innermost first, each only while empty:
 * one another command put something in meanwhile is its, and stays.
 */
export function removeMadeDirs(made: string[]): void {
  for (const dir of made.toReversed()) {
    try {
      Deno.removeSync(dir);
    } catch {
      // Not empty, or gone already: left as it is.
      return;
    }
  }
}
