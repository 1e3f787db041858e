/**
 * Whether a directory is root's alone, down from `/`: what root may work in by path.
 *
 * Root follows every name it opens, renames or removes. In a directory another user can
 * write to, that user can put a symlink (or a directory of theirs) at a name between root's
 * check and its use, and root then writes, truncates or gives away the file it points to:
 * no handle-based care closes that, since SQLite and the backup's own code work by path.
 *
 * @module
 */
import { dirname, resolve } from "node:path";

/** A directory on the way to `path` that someone other than root can change. */
export interface SharedDirectory {
  /** That directory. */
  path: string;
  /** Its owner. */
  uid: number;
}

/** Directories `path` is reached through: its own and each above it, up to `/`. */
function ancestors(path: string): string[] {
  const all = [path];
  while (all.at(-1) !== dirname(all.at(-1)!)) all.push(dirname(all.at(-1)!));
  return all;
}

/**
 * The first directory on the way to `dir` (as written and once resolved) that a user other
 * than root can change entries of: one another user owns, or group or world writable without
 * the sticky bit. Undefined when root alone can.
 */
export function sharedDirectory(dir: string): SharedDirectory | undefined {
  const written = resolve(dir);
  for (const path of new Set([...ancestors(written), ...ancestors(Deno.realPathSync(written))])) {
    const { uid, mode } = Deno.statSync(path);
    const sticky = (mode! & 0o1000) !== 0;
    if (uid !== 0 || ((mode! & 0o022) !== 0 && !sticky)) return { path, uid: uid! };
  }
  return undefined;
}
