/**
 * Tells whether an open file was unlinked from its directory, at each call, without a stat of
 * the file itself at each call.
 *
 * Why not one `fstat` a call: a stat asks for the file's timestamps, and since Linux 6.13
 * (multigrain timestamps) a file whose times were asked for takes a fine-grained mtime at its
 * next write, a new one at every write, which ext4 then journals. Measured on ext4 under
 * 6.18: a 300-byte write and fdatasync took 40 µs longer with an fstat after each.
 *
 * So the directory is asked instead: an unlink changes the directory's mtime and ctime, and a
 * directory whose identity and times are as at the last check, with an mtime old enough that
 * any change since would have moved it, has lost no file. Anything else (a recent change, a
 * new directory at the path, none, a wall clock that jumped) falls back to the file's own
 * link count.
 *
 * @module
 */

/**
 * How old a directory's mtime must be to be trusted: past the coarsest timestamps a backup's
 * filesystem may keep (FAT's 2 s; ext4's small inodes' 1 s; Deno's ctime is whole seconds)
 * plus the tick (up to 10 ms) a kernel may stamp a change late. Closer to the last change, a
 * later one could be stamped with the same time.
 */
const SETTLED_MS = 3_000;

/** How far the wall clock may move against the monotonic one before a record is dropped. */
const CLOCK_JUMP_MS = 100;

/** Checks a file, open for appends, for having been unlinked from `dir`. */
export class UnlinkCheck {
  /** The directory as last seen settled, and the wall clock's offset from the monotonic then. */
  #quiet = { directory: "", clock: 0 };

  /**
   * `now` and `monotonic`: the wall clock that directory mtimes are compared with, and one
   * that never jumps, in ms (seams for tests).
   */
  constructor(
    readonly dir: string,
    readonly now: () => number = Date.now,
    readonly monotonic: () => number = () => performance.now(),
  ) {}

  /** Whether `file`, open at `path` in {@linkcode dir}, has no link left (st_nlink 0). */
  unlinked(file: Deno.FsFile, path: string): boolean {
    // The directory first: an unlink after it moves its times for the next call to see.
    const now = this.now();
    const quiet = this.#quietDirectory(now);
    // A wall clock set back could stamp a new change with the time recorded: asked again.
    const clock = now - this.monotonic();
    if (
      quiet !== undefined && quiet === this.#quiet.directory &&
      Math.abs(clock - this.#quiet.clock) <= CLOCK_JUMP_MS
    ) {
      return false;
    }
    const info = file.statSync();
    if (info.nlink === 0) return true;
    // Moved out of the directory, the file could be unlinked where the directory cannot see.
    if (quiet !== undefined && isAt(path, info)) this.#quiet = { directory: quiet, clock };
    return false;
  }

  /** The directory's identity and times, if it has not changed for {@linkcode SETTLED_MS}. */
  #quietDirectory(now: number): string | undefined {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(this.dir);
    } catch {
      // Moved, removed, unreadable: the file's own count answers.
      return undefined;
    }
    const changed = info.mtime?.getTime();
    if (changed === undefined || info.ctime === null || info.ino === null) return undefined;
    // An mtime ahead of the clock (a clock set back) never settles: the file is asked.
    if (now - changed < SETTLED_MS) return undefined;
    return `${info.dev}:${info.ino}:${changed}:${info.ctime.getTime()}`;
  }
}

/** Whether `path` names the file `info` describes. */
function isAt(path: string, info: Deno.FileInfo): boolean {
  try {
    const there = Deno.lstatSync(path);
    return there.ino === info.ino && there.dev === info.dev;
  } catch {
    return false;
  }
}
