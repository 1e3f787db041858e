/**
 * Runs a test's body while another thread of this process forks children without pause, as
 * the other test files running in this process do (deno test --parallel): each child holds a
 * copy of every open file of the process, flock locks and all, until it execs.
 *
 * @module
 */

/** Runs `body` while fork_worker.ts spawns short-lived children; returns what it returns. */
export async function whileForking<T>(body: () => Promise<T>): Promise<T> {
  const worker = new Worker(new URL("./fork_worker.ts", import.meta.url), { type: "module" });
  const stopped = new Promise<number>((resolve) => worker.onmessage = (e) => resolve(e.data));
  try {
    return await body();
  } finally {
    worker.postMessage("stop");
    await stopped;
  }
}
