/**
 * What the plugin evaluates at every start, whatever its backup: the modules plugin.ts reaches
 * by static imports. A file backup, the common case, must not pay for the code only other
 * destinations need (remote_destinations.ts loads it when backup.lock names one), nor for the
 * compaction itself, which runs on a worker: each was measured to cost the start CPU.
 */
import { assertEquals } from "./support/assert.ts";
import { isRemoteOnly, staticGraph } from "./support/static_graph.ts";

Deno.test("plugin start: no socket:, s3:// or wire code, no TLS, no compaction or restore is loaded by static imports", async () => {
  const graph = await staticGraph("plugin.ts");
  const remoteOnly = graph.filter((path) =>
    isRemoteOnly(path) || ["node:stream/promises", "node:sqlite"].includes(path) ||
    ["lib/compact/compact.ts", "lib/backup/restore.ts"].includes(path)
  );
  assertEquals(remoteOnly, []);
});
