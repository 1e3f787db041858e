/**
 * The serve loop keeps nothing per message: lightningd sends millions of db_writes over a
 * node's life. Runs serve_memory_probe.ts (it needs --expose-gc) and checks the heap each
 * db_write leaves behind once collected.
 */
import { assert } from "./support/assert.ts";

Deno.test("serve: a db_write leaves nothing behind on the heap while lightningd stays connected", async () => {
  const probe = new URL("./serve_memory_probe.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--expose-gc", "-A", probe, "60000"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert(code === 0, new TextDecoder().decode(stderr));
  const { perMessage, version } = JSON.parse(text);
  assert(version === 60000, text);
  // 60,000 db_writes: the 300 bytes each a race against the input's end kept come to 15 MB.
  assert(perMessage < 16, `each db_write left ${perMessage} bytes on the heap`);
});
