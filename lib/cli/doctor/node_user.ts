/**
 * Who lightningd runs as, and whether permission bits let that user at a file: doctor runs as
 * whoever types it, so it judges access by the bits, not by trying.
 *
 * @module
 */
import { dirname } from "node:path";
import { DATABASE_NAME } from "../../backup/database_name.ts";
import { statIfExists } from "../../fs/exists.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { userGroups } from "./user_groups.ts";

export interface NodeUser {
  uid: number;
  /** The group of the file the uid was learned from, for `chown` advice. */
  gid: number;
  /** Every group whose bits apply to lightningd: `gid` and those its user is in. */
  groups: readonly number[];
  /** What the uid was learned from, for messages. */
  from: string;
}

/**
 * The owner of the node's database, else of hsm_secret, else of `dir`; its groups beyond the
 * file's as `groupsOf` gives them.
 */
export function nodeUser(
  dir: string,
  groupsOf: (uid: number) => number[] = userGroups,
  database = `${dir}/${DATABASE_NAME}`,
): NodeUser | undefined {
  for (const path of [database, `${dir}/hsm_secret`, dir]) {
    const info = statIfExists(path);
    if (info?.uid == null || info.gid == null) continue;
    const groups = [...new Set([info.gid, ...groupsOf(info.uid)])];
    return { uid: info.uid, gid: info.gid, groups, from: path };
  }
  return undefined;
}

/** Whether the permission bits let `user` do `what` (4 read, 2 write, 1 execute/search). */
export function allows(info: Deno.FileInfo, user: NodeUser | undefined, what: number): boolean {
  if (user === undefined || info.mode === null || user.uid === 0) return true;
  const mode = info.mode;
  if (info.uid === user.uid) return ((mode >> 6) & what) === what;
  if (info.gid !== null && user.groups.includes(info.gid)) return ((mode >> 3) & what) === what;
  return (mode & what) === what;
}

/**
 * The first directory above `path` that `user` may not search, or `undefined`: the kernel
 * needs search on each one to reach `path`, along the path as written and, when a symlink
 * leads elsewhere, along the path it resolves to.
 */
export function unsearchableAbove(path: string, user: NodeUser | undefined): string | undefined {
  let real = path;
  try {
    real = Deno.realPathSync(path);
  } catch {
    // Missing: whoever reads it says so; its directories are still walked as written.
  }
  for (const start of new Set([path, real])) {
    for (let dir = dirname(start);; dir = dirname(dir)) {
      const info = statIfExists(dir);
      if (info && !allows(info, user, 1)) return dir;
      if (dirname(dir) === dir) break;
    }
  }
  return undefined;
}

/**
 * Why `user` cannot reach `path` (see {@linkcode unsearchableAbove}), with what to run or,
 * naming it `what`, where to move it; `undefined` when it can.
 */
export function unreachableProblem(
  path: string,
  user: NodeUser | undefined,
  what = "it",
): string | undefined {
  const blocked = unsearchableAbove(path, user);
  if (blocked === undefined) return undefined;
  return `"${blocked}" is not searchable by ${describeUser(user)}, so it cannot reach ` +
    `"${path}": run "chmod o+x ${shellQuote(blocked)}", or move ${what} where that user can ` +
    `reach it`;
}

/** "uid N (lightningd's user, the owner of "PATH")", for messages. */
export function describeUser(user: NodeUser | undefined): string {
  return `uid ${user?.uid} (lightningd's user, the owner of "${user?.from}")`;
}
