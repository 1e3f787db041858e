/**
 * Ctrl-C while restore or compact waits on the network (a server, S3), not in a checkpointed
 * loop: the README promises it stops "within a moment", exit 130, with its one line. Before
 * the signal watcher, Ctrl-C killed such a wait at once.
 */
import { assertEquals } from "./support/assert.ts";
import { CliProcess } from "./support/cli_process.ts";

Deno.test("Ctrl-C while restore waits on a server that does not answer: exit 130 within seconds", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "interrupt-await-" });
  // The restore's temporary directory: what the interrupted fetch leaves there for the next
  // run (the README) goes with it.
  const tmp = Deno.makeTempDirSync({ prefix: "interrupt-await-tmp-" });
  // A server that takes the connection and never says a word (a hung host, a Tor circuit).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepted = listener.accept().then((conn) => held.push(conn));
  try {
    const process = new CliProcess(
      ["restore", `socket:127.0.0.1:${listener.addr.port}`, dir],
      undefined,
      undefined,
      { TMPDIR: tmp },
    );
    await accepted;
    // The restore is in its body, the watcher armed: it reads the server's answer.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const sent = performance.now();
    process.signal("SIGINT");
    const run = await process.result();
    const seconds = (performance.now() - sent) / 1000;
    assertEquals(
      { code: run.code, stderr: run.stderr, prompt: seconds < 5 },
      {
        code: 130,
        stderr: [`Interrupted: restore stopped; nothing was written to "${dir}"`],
        prompt: true,
      },
      `after ${seconds.toFixed(1)} s`,
    );
  } finally {
    for (const conn of held) conn.close();
    listener.close();
    for (const path of [dir, tmp]) Deno.removeSync(path, { recursive: true });
  }
});
