/**
 * Taking and releasing an `flock` without leaks. Such a lock belongs to the open file, not
 * to the descriptor: a child that this process forks (on any thread: a Worker, a library)
 * gets a copy of every descriptor and holds the open file, lock and all, until it execs.
 * Closing our descriptor alone then leaves the lock held for that moment, and the next
 * taker, in this process or another, is refused as if a second process held it. An explicit
 * unlock releases it for every copy.
 *
 * @module
 */

/**
 * Takes `file`'s exclusive lock without waiting: `true` when taken; `false` when another
 * holder has it, and `file` is closed. An error (ENOLCK on some network file systems) closes
 * `file` too, so a refused or failed take leaks no descriptor.
 */
export function tryLock(file: Deno.FsFile): boolean {
  let taken = false;
  try {
    taken = file.tryLockSync(true);
    return taken;
  } finally {
    if (!taken) file.close();
  }
}

/** Unlocks `file`'s lock, then closes it. */
export function releaseLock(file: Deno.FsFile): void {
  try {
    file.unlockSync();
  } finally {
    file.close();
  }
}
