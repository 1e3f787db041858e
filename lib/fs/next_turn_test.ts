import { assert } from "../../tests/support/assert.ts";
import { nextTurn } from "./next_turn.ts";

/** Busy for `ms`, as a part of a base is while it is compressed. */
function work(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

Deno.test("nextTurn: packets of other connections are read between the steps of a busy thread", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  // An echo served on this thread, as a server's other connection is.
  const echoing = (async () => {
    const byte = new Uint8Array(1);
    while (await server.read(byte) !== null) await server.write(byte);
  })();
  let answered = 0;
  let busy = true;
  const pinging = (async () => {
    const byte = new Uint8Array(1);
    while (busy) {
      await client.write(byte);
      if (await client.read(byte) === null) return;
      if (busy) answered++;
    }
  })();
  const path = Deno.makeTempFileSync({ prefix: "cln-backup-next-turn-" });
  const file = Deno.openSync(path);
  try {
    // 300 ms of work in 5 ms steps, as a base's parts are made.
    let parks = 0;
    for (let step = 0; step < 60; step++) {
      work(5);
      const paused = performance.now();
      await nextTurn(file);
      // A timer's pause, which parks the thread (a stat's takes tens of microseconds).
      if (performance.now() - paused >= 1) parks++;
    }
    busy = false;
    assert(answered >= 5, `${answered} echoes during 300 ms of work`);
    // At least every 20 ms of work: whether the loop polls for I/O after a stat depends on
    // what else it has to run, a park does not.
    assert(parks >= 300 / 20 / 2, `${parks} parks in 300 ms of work`);
  } finally {
    file.close();
    Deno.removeSync(path);
    client.close();
    await pinging.catch(() => {});
    server.close();
    await echoing.catch(() => {});
    listener.close();
  }
});
