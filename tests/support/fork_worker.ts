/**
 * The worker of forking.ts: spawns short-lived children (`true`), four at a time, until told
 * to stop; then posts how many it spawned.
 *
 * @module
 */
/// <reference lib="deno.worker" />
let stopping = false;
let spawned = 0;
self.onmessage = () => stopping = true;
async function spawnLoop(): Promise<void> {
  while (!stopping) {
    await new Deno.Command("true", { stdout: "null", stderr: "null" }).output();
    spawned++;
  }
}
await Promise.all([spawnLoop(), spawnLoop(), spawnLoop(), spawnLoop()]);
self.postMessage(spawned);
self.close();
