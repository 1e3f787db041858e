import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { renderMetrics, serveMetrics } from "./metrics.ts";

Deno.test("metrics: one gauge per node, lag from the last write, none without one", () => {
  const text = renderMetrics([
    { node: "alice", version: 7, bytes: 1000, lastWrite: 90, connections: 1 },
    { node: "bob", version: 0, bytes: 0, lastWrite: undefined, connections: 0 },
  ], 100);
  const samples = text.split("\n").filter((l) => l && !l.startsWith("#"));
  assertEquals(samples, [
    'cln_backup_node_version{node="alice"} 7',
    'cln_backup_node_version{node="bob"} 0',
    'cln_backup_node_bytes{node="alice"} 1000',
    'cln_backup_node_bytes{node="bob"} 0',
    'cln_backup_node_last_write_timestamp_seconds{node="alice"} 90',
    'cln_backup_node_lag_seconds{node="alice"} 10',
    'cln_backup_node_connections{node="alice"} 1',
    'cln_backup_node_connections{node="bob"} 0',
    'cln_backup_node_connected{node="alice"} 1',
    'cln_backup_node_connected{node="bob"} 0',
  ]);
});

Deno.test("metrics listen on loopback only, and answer GET /metrics only", async () => {
  await assertRejects(() => serveMetrics("0.0.0.0", 0, () => []), /loopback only/);
  const server = serveMetrics("127.0.0.1", 0, () => [
    { node: "n", version: 1, bytes: 2, lastWrite: undefined, connections: 0 },
  ]);
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const ok = await fetch(`${base}/metrics`);
    assertEquals(ok.status, 200);
    assertEquals((await ok.text()).includes('cln_backup_node_bytes{node="n"} 2'), true);
    const other = await fetch(`${base}/`);
    await other.body?.cancel();
    assertEquals(other.status, 404);
  } finally {
    await server.shutdown();
  }
});
