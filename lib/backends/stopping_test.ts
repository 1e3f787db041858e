import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { pause, StoppingError, unlessStopping } from "./stopping.ts";

Deno.test("a pause of an hour ends with the plugin's stop, leaving no timer behind", async () => {
  const lifetime = new AbortController();
  const paused = pause(3_600_000, lifetime.signal);
  lifetime.abort();
  // Deno's sanitizer fails this test should the hour's timer be left running.
  assert((await assertRejects(() => paused)) instanceof StoppingError);
});

Deno.test("a wait already stopped fails at once; one that ends first keeps its outcome", async () => {
  const stopped = new AbortController();
  stopped.abort();
  const never = new Promise<never>(() => {});
  assert(
    (await assertRejects(() => unlessStopping(never, stopped.signal))) instanceof StoppingError,
  );
  const alive = new AbortController();
  assertEquals(await unlessStopping(Promise.resolve(7), alive.signal), 7);
  await pause(1, alive.signal);
  await assertRejects(
    () => unlessStopping(Promise.reject(new Error("lost")), alive.signal),
    /lost/,
  );
});

Deno.test("a pause past a timer's reach waits, not fires at once", async () => {
  // A retry's pause after many tries: setTimeout fires one this long after 1 ms.
  const lifetime = new AbortController();
  let ended = false;
  const paused = pause(2 ** 32, lifetime.signal).finally(() => ended = true);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assertEquals(ended, false);
  lifetime.abort();
  assert((await assertRejects(() => paused)) instanceof StoppingError);
});
