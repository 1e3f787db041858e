/**
 * One set-up at a time on a lightning dir: init and upgrade hold an exclusive `flock` on the
 * directory from their checks to their last write, so two of them cannot both find no
 * `backup.lock` and both write one. The kernel drops the lock when the process dies.
 *
 * @module
 */
import { releaseLock, tryLock } from "../fs/flock.ts";

/**
 * Takes the lightning dir's set-up lock, or refuses; dispose of it (`using`) to release it,
 * which unlocks before it closes (flock.ts).
 */
export function lockForSetup(dir: string, action: string): Disposable {
  const handle = Deno.openSync(dir, { read: true });
  if (!tryLock(handle)) {
    throw new Error(
      `${action}: another init or upgrade is running on "${dir}" (it holds the directory's ` +
        `lock): wait for it to finish, then run this again`,
    );
  }
  return { [Symbol.dispose]: () => releaseLock(handle) };
}
