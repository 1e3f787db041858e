/**
 * A flood of failed logins from loopback (where every peer of a Tor onion service comes from,
 * and which is never turned away) fills no log: each kind of per-connection failure line is
 * logged at most so many times a minute, the first at once, and one line then says how many
 * more there were. A wire v1 client proves nothing either: its refused writes are such lines.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { WireConnection } from "../lib/backends/socket/connection.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import { decodeError, encodeFrame, ErrorCode, V2Type } from "../lib/wire/packets_v2.ts";
import { withServer } from "./support/v2_server.ts";
import { RawClient, startServer } from "./support/wire_server.ts";
import {
  encodeChange,
  encodePacket,
  encodeSnapshot,
  encodeVersionPacket,
  PacketType,
} from "../lib/wire/packets.ts";
import { makeEncryptedBackup } from "./support/encrypted.ts";
import { bumpStatement } from "./support/statements.ts";

Deno.test("a flood of bad logins logs a bounded number of lines, then says how many it left out", async () => {
  let clock = 0;
  let logs: string[] = [];
  const count = (pattern: RegExp) => logs.filter((line) => pattern.test(line)).length;
  await withServer(
    async ({ root, url, logs: serverLogs }) => {
      logs = serverLogs;
      const target = socketUrl(url);
      const wrong = { node: "alice", key: new Uint8Array(32).fill(7), path: `${root}/x` };
      const badLogin = () =>
        assertRejects(() => WireConnection.open(target, 5_000, wrong), /does not accept/);
      for (let i = 0; i < 40; i++) await badLogin();
      // Each refusal is logged before its ERROR goes out: all 40 are counted by now.
      assertEquals(count(/refused: no valid proof/), 5, logs.join("\n"));
      // A minute later, the next one is logged at once, after the count of those left out.
      clock += 60_000;
      await badLogin();
      assertEquals(count(/refused: no valid proof/), 6, logs.join("\n"));
      const summary = logs.findIndex((line) => /refused logins: 35 more/.test(line));
      assert(summary >= 0, logs.join("\n"));
      assertMatch(
        logs[summary],
        /^warning: refused logins: 35 more in the last minute, not logged/,
      );
      assertMatch(logs[summary + 1], /refused: no valid proof/);
    },
    { failureLinesPerMinute: 5 },
    { now: () => clock },
  );
  // 41 connections: as many connect lines as those of the two minutes, each with its
  // disconnect, and the others counted.
  assertEquals(count(/: connected$/), 6, logs.join("\n"));
  assertEquals(count(/: disconnected$/), 6, logs.join("\n"));
  assertMatch(
    logs.join("\n"),
    /connections that proved no key \(their connect and disconnect lines\): 35 more/,
  );
  assert(logs.length < 30, logs.join("\n"));
});

Deno.test("connections that crowd out others' handshakes, again and again, log a bounded number of lines too", async () => {
  let logs: string[] = [];
  await withServer(
    async ({ server, logs: serverLogs }) => {
      logs = serverLogs;
      const connect = () => Deno.connect({ hostname: "127.0.0.1", port: server.port });
      const closed = (conn: Deno.Conn) => conn.read(new Uint8Array(64)).catch(() => null);
      // Each time: one connection lets the handshakes be under their limit again, the next is
      // let in only by closing it, and says wire v1 (not served) to be closed in turn.
      for (let i = 0; i < 8; i++) {
        const idle = await connect();
        const crowding = await connect();
        assertEquals(await closed(idle), null);
        await crowding.write(Uint8Array.of(1));
        while (await closed(crowding) !== null);
        idle.close();
        crowding.close();
      }
    },
    { failureLinesPerMinute: 3, pendingConnections: 1 },
    { now: () => 0 },
  );
  const crowded = logs.filter((line) => /awaiting a handshake: closing the oldest/.test(line));
  assertEquals(crowded.length, 3, logs.join("\n"));
  assertMatch(logs.join("\n"), /: 5 more in the last minute, not logged/);
});

Deno.test("a flood of bad logins hides neither a node key's problem nor a node's own protocol error", async () => {
  await withServer(
    async ({ root, server, url, logs, nodes, credential }) => {
      const target = socketUrl(url);
      const wrong = { node: "alice", key: new Uint8Array(32).fill(7), path: `${root}/x` };
      for (let i = 0; i < 10; i++) {
        await assertRejects(() => WireConnection.open(target, 5_000, wrong), /does not accept/);
        // Keyless garbage too: its protocol errors fill their kind's minute.
        const raw = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        await raw.write(encodeFrame(V2Type.Hello, new Uint8Array(3)));
        await raw.read(new Uint8Array(256)).catch(() => null);
        raw.close();
      }
      // Alice's node proves its key, then sends what the server does not know.
      const alice = await WireConnection.open(target, 5_000, {
        node: "alice",
        key: credential("alice").key,
        path: `${root}/a`,
      });
      await alice.send(encodeFrame(0x7f as V2Type));
      assertEquals(decodeError(await alice.receive()).code, ErrorCode.BadPacket);
      alice.close();
      // The operator's mistake on bob's key, now under the flood.
      const key = `${nodes.root}/nodes/bob/key`;
      Deno.chmodSync(key, 0o644);
      const bob = { node: "bob", key: credential("bob").key, path: `${root}/b` };
      await assertRejects(() => WireConnection.open(target, 5_000, bob), /cannot use node "bob"/);
      const all = logs.join("\n");
      assertMatch(all, /\(node alice\): protocol error: unexpected/);
      assertMatch(all, /refused: node bob's key ".*" may be read by other users/);
    },
    { failureLinesPerMinute: 3 },
    { now: () => 0 },
  );
});

Deno.test("a wire v1 client whose writes are refused, write after write, logs a bounded number of lines, and hides no disk failure", async () => {
  const root = Deno.makeTempDirSync({ prefix: "v1-flood-" });
  const { server, logs } = startServer(`${root}/served`, 0, {
    failureLinesPerMinute: 3,
    now: () => 0,
  });
  try {
    // No credential to prove: anyone who reaches the port may send write after write.
    const client = await RawClient.connect(server.port);
    for (let i = 0; i < 10; i++) {
      await client.send(encodeChange(5, [bumpStatement(4)]));
      assertEquals((await client.next())?.type, PacketType.Nack);
    }
    // Then the server cannot store a write (its upload file cannot be made).
    Deno.mkdirSync(`${root}/served/upload-1.tmp`);
    await client.send(encodeSnapshot(3, new Uint8Array(10)));
    assertEquals((await client.next())?.type, PacketType.Nack);
    client.close();
  } finally {
    await server.close();
    Deno.removeSync(root, { recursive: true });
  }
  const refused = logs.filter((line) => /refused version 5: .* answering NACK/.test(line));
  assertEquals(refused.length, 3, logs.join("\n"));
  assertMatch(
    logs.join("\n"),
    /^error: wire v1 requests refused \(NACK\): 7 more in the last minute/m,
  );
  assertMatch(logs.join("\n"), /refused version 3: cannot store it: .*; answering NACK/);
});

Deno.test("wire v1 connections, each closed at its first packet (unknown; or to an encrypted backup), log a bounded number of lines", async () => {
  const root = Deno.makeTempDirSync({ prefix: "v1-flood-" });
  const plain = startServer(`${root}/plain`, 0, { failureLinesPerMinute: 2, now: () => 0 });
  await makeEncryptedBackup(`${root}/sealed`);
  const sealed = startServer(`${root}/sealed`, 0, { failureLinesPerMinute: 2, now: () => 0 });
  try {
    for (let i = 0; i < 6; i++) {
      const unknown = await RawClient.connect(plain.server.port);
      await unknown.send(encodePacket(0x0c as PacketType));
      assertEquals(await unknown.next(), null);
      unknown.close();
      const v1 = await RawClient.connect(sealed.server.port);
      await v1.send(encodePacket(PacketType.ReqMetadata));
      assertEquals((await v1.next())?.type, PacketType.Nack);
      v1.close();
    }
  } finally {
    await plain.server.close();
    await sealed.server.close();
    Deno.removeSync(root, { recursive: true });
  }
  const count = (logs: string[], pattern: RegExp) => logs.filter((l) => pattern.test(l)).length;
  assertEquals(count(plain.logs, /closing: unknown packet/), 2, plain.logs.join("\n"));
  assertMatch(plain.logs.join("\n"), /protocol errors: 4 more in the last minute/);
  assertEquals(count(sealed.logs, /wire v1 to an encrypted backup/), 2, sealed.logs.join("\n"));
  assertMatch(sealed.logs.join("\n"), /wire v1 requests refused \(NACK\): 4 more/);
});

Deno.test("a wire v1 client refused as a second writer, request after request (REWIND, SNAPSHOT), logs a bounded number of lines", async () => {
  const root = Deno.makeTempDirSync({ prefix: "v1-flood-" });
  const { server, logs } = startServer(`${root}/served`, 0, {
    failureLinesPerMinute: 3,
    now: () => 0,
  });
  try {
    // The node, the backup's writer.
    const node = await RawClient.connect(server.port);
    await node.send(encodeChange(1, [bumpStatement(0)]));
    assertEquals((await node.next())?.type, PacketType.Ack);
    const other = await RawClient.connect(server.port);
    for (let i = 0; i < 10; i++) {
      await other.send(encodeVersionPacket(PacketType.Rewind, 0));
      assertEquals((await other.next())?.type, PacketType.Nack);
      await other.send(encodeSnapshot(7, new Uint8Array(10)));
      assertEquals((await other.next())?.type, PacketType.Nack);
    }
    other.close();
    node.close();
  } finally {
    await server.close();
    Deno.removeSync(root, { recursive: true });
  }
  const about = logs.filter((line) => /REWIND|SNAPSHOT|refused version/.test(line));
  assertEquals(about.length, 3, logs.join("\n"));
  assertMatch(logs.join("\n"), /wire v1 requests refused \(NACK\): 17 more in the last minute/);
});
