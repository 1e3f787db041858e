/**
 * A node key whose mode lets others read it, as the server's key check (1 s) sees it while
 * the node is connected.
 */
import { assert, assertMatch, assertRejects } from "./support/assert.ts";
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

Deno.test("a key file that holds no key refuses its node naming the file, and closes the connections that proved the key it held", async () => {
  await withServer(async ({ url, credential, nodes, logs }) => {
    const conn = await WireConnection.open(socketUrl(url), 30_000, credential("alice"));
    const path = nodes.keyPath("alice");
    try {
      // Emptied (an add-node of an older version cut short by a full disk), or edited by hand.
      Deno.writeTextFileSync(path, "\n");
      const closing = new RegExp(
        `closing: node alice's key "${path}" holds no key \\(64 hex digits\\)`,
      );
      const by = performance.now() + 3_000;
      while (performance.now() < by && !logs.some((l) => closing.test(l))) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert(logs.some((l) => closing.test(l)), logs.join("\n"));
    } finally {
      conn.close();
    }
    // Not a wrong credential: the node's is right, the server's file is not.
    await assertRejects(
      () => WireConnection.open(socketUrl(url), 30_000, credential("alice")),
      /the server cannot use node "alice"'s key: its operator must fix that/,
    );
    assertMatch(
      logs.join("\n"),
      new RegExp(
        `error: connection \\d+ from .*: refused: node alice's key "${path}" holds no key ` +
          `\\(64 hex digits\\): put back the "key" of the node's backup.credential, or give ` +
          `the node a new one with "server remove-node" and "server add-node"`,
      ),
    );
  });
});
