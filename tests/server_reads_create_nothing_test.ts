/**
 * A request that only reads (status, verify, restore, a heartbeat's METADATA) of a node with
 * no backup yet leaves the server's disk as it was: the backup is made by the node's first
 * write, never by a look at it.
 */
import { assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { withServer } from "./support/v2_server.ts";
import { serverStatus, serverVerify } from "../lib/backends/socket/server_checks.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { WireConnection } from "../lib/backends/socket/connection.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import {
  decodeError,
  encodeFrame,
  encodeVersionFrame,
  ErrorCode,
  V2Type,
} from "../lib/wire/packets_v2.ts";

Deno.test("status, verify and restore of a node with no backup yet create nothing on the server", async () => {
  await withServer(async ({ url, credential, nodes, logs }) => {
    const alice = credential("alice");
    const status = await serverStatus(url, alice);
    assertEquals([status.lastVersion, status.records, status.snapshots], [0, 0, []]);
    const report = await serverVerify(url, alice);
    assertEquals([report.records, report.restoredVersion], [0, undefined]);
    await assertRejects(
      () => SocketBackupReader.fetch(url, 5_000, alice),
      /^the server refused the restore: node alice has no backup on this server yet: nothing to restore; init on the node makes one$/,
    );
    const policy = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 };
    const reader = await SocketBackend.connect(url, { policy, credential: alice });
    assertEquals(reader.state().version, 0);
    reader.close();
    assertEquals(existsSync(nodes.backupDir("alice")), false, logs.join("\n"));
    assertEquals([...Deno.readDirSync(`${nodes.root}/nodes/alice`)].map((e) => e.name), ["key"]);

    // The node's first write makes it, as before.
    const writer = await SocketBackend.connect(url, { policy, credential: alice });
    await writer.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    writer.close();
    assertEquals((await serverStatus(url, alice)).lastVersion, 1);
    assertMatch(logs.join("\n"), /node alice: created the empty backup/);
  });
});

Deno.test("a backup that cannot be opened once connected is refused in words, not a dropped connection", async () => {
  await withServer(async ({ server, credential, nodes, logs }) => {
    const target = socketUrl(`socket:127.0.0.1:${server.port}`);
    const conn = await WireConnection.open(target, 5_000, credential("alice"));
    try {
      // Something that is no backup put where the node's backup goes, after its handshake.
      Deno.writeTextFileSync(nodes.backupDir("alice"), "not a backup");
      await conn.send(encodeFrame(V2Type.Status));
      const refused = decodeError(await conn.receive());
      assertEquals(refused.code, ErrorCode.Storage);
      assertEquals(
        refused.message,
        "the server cannot open node alice's backup: see the server's log",
      );
      assertMatch(logs.join("\n"), /\(node alice\): cannot open its backup: .* is not a backup/);
    } finally {
      conn.close();
    }
  });
});

Deno.test("a request the server does not know, from a node with no backup yet, makes none either", async () => {
  await withServer(async ({ server, credential, nodes, logs }) => {
    const target = socketUrl(`socket:127.0.0.1:${server.port}`);
    const conn = await WireConnection.open(target, 5_000, credential("alice"));
    try {
      await conn.send(encodeFrame(0x7f as V2Type));
      assertEquals(decodeError(await conn.receive()).code, ErrorCode.BadPacket);
    } finally {
      conn.close();
    }
    assertMatch(logs.join("\n"), /\(node alice\): protocol error: unexpected/);
    assertEquals(existsSync(nodes.backupDir("alice")), false);
  });
});

Deno.test("COMPACT, REWIND and a rekey of a node with no backup yet are refused in words, and make none", async () => {
  await withServer(async ({ server, credential, nodes }) => {
    const target = socketUrl(`socket:127.0.0.1:${server.port}`);
    const conn = await WireConnection.open(target, 5_000, credential("alice"));
    try {
      const requests: [string, Uint8Array][] = [
        ["compact", encodeFrame(V2Type.Compact)],
        ["rewind", encodeVersionFrame(V2Type.Rewind, 0)],
        ["rekey", encodeFrame(V2Type.SealedKey, new TextEncoder().encode("{}"))],
      ];
      for (const [what, request] of requests) {
        const refused = decodeError(await conn.request(request));
        assertEquals(
          [refused.code, refused.message],
          [
            ErrorCode.Refused,
            `node alice has no backup on this server yet: nothing to ${what}; init on the ` +
            `node makes one`,
          ],
        );
      }
    } finally {
      conn.close();
    }
    assertEquals(existsSync(nodes.backupDir("alice")), false);
  });
});
