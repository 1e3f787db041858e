/**
 * A node key whose mode lets others read it, as the server's key check (1 s) sees it while
 * the node is connected.
 */
import { assert } from "./support/assert.ts";
import { withServer } from "./support/v2_server.ts";
import { WireConnection } from "../lib/backends/socket/connection.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import { KEY_BYTES, keyToText, randomBytes } from "../lib/wire/handshake.ts";

Deno.test("a node's key replaced by one others may read still closes the connections that proved the old one", async () => {
  await withServer(async ({ url, credential, nodes, logs }) => {
    const conn = await WireConnection.open(socketUrl(url), 30_000, credential("alice"));
    try {
      // The operator replaces the leaked key, and the new file is left 0644 (a cp under
      // umask 022, say): the old key must not stay connected for that.
      const path = nodes.keyPath("alice");
      Deno.removeSync(path);
      Deno.writeTextFileSync(path, `${keyToText(randomBytes(KEY_BYTES))}\n`, { mode: 0o644 });
      Deno.chmodSync(path, 0o644);
      const by = performance.now() + 3_000;
      while (performance.now() < by && !logs.some((l) => /closing: node alice's key/.test(l))) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert(
        logs.some((l) => /closing: node alice's key/.test(l)),
        `the connection that proved the replaced key is still served:\n${logs.join("\n")}`,
      );
    } finally {
      conn.close();
    }
  });
});
