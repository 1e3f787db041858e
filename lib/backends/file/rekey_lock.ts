/**
 * The lock a rekey of a file backup holds from before it reads `key.json` to after it replaces
 * it: the exclusive flock of the backup directory (the kernel drops it when the process dies).
 * A server takes it too for its check and write of a node's new `key.json`, so a rekey run on
 * the server's host, of the directory itself, and one sent through the server are one at a
 * time: the later one would else replace the secret of the other.
 *
 * @module
 */
import { releaseLock, tryLock } from "../../fs/flock.ts";

/**
 * Takes the rekey lock of the backup directory `dir`: `undefined` when another rekey holds
 * it. On a file system without flock (some NFS mounts) it goes on unlocked, as before there
 * was a lock.
 */
export function lockRekey(dir: string): Disposable | undefined {
  const handle = Deno.openSync(dir, { read: true });
  let taken: boolean;
  try {
    taken = tryLock(handle);
  } catch {
    return { [Symbol.dispose]: () => {} }; // tryLock closed the handle.
  }
  return taken ? { [Symbol.dispose]: () => releaseLock(handle) } : undefined;
}
