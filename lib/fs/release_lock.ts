/**
 * Releasing an `flock` at once. Such a lock belongs to the open file, not to the descriptor:
 * a child that this process forks (on any thread: a Worker, a library) gets a copy of every
 * descriptor and holds the open file, lock and all, until it execs. Closing our descriptor
 * alone then leaves the lock held for that moment, and the next taker, in this process or
 * another, is refused as if a second process held it. An explicit unlock releases it for
 * every copy.
 *
 * @module
 */

/** Unlocks `file`'s lock, then closes it. */
export function releaseLock(file: Deno.FsFile): void {
  try {
    file.unlockSync();
  } finally {
    file.close();
  }
}
