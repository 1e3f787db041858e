/**
 * Hostile peers on the wire: an unauthenticated client or a flood of reset connections
 * against the server, and a server (or whoever answers before it proves the node's key)
 * against the node's client.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "./support/assert.ts";
import { withServer } from "./support/v2_server.ts";
import { freePort, spawnServer, spawnServerProcess } from "./support/server_process.ts";
import { deflate } from "../lib/wire/deflate.ts";
import { cli } from "./support/encrypted_server.ts";
import { makeEncryptedBackup, PASSPHRASE } from "./support/encrypted.ts";
import { dumpDatabase } from "./support/dump.ts";
import { loadFixture } from "./support/fixtures.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { CREDENTIAL_ENV } from "../lib/backends/socket/credential.ts";
import { PASSPHRASE_ENV } from "../lib/cli/secrets.ts";
import { WireConnection } from "../lib/backends/socket/connection.ts";
import { PacketReader } from "../lib/wire/packet_reader.ts";
import { keyToText } from "../lib/wire/handshake.ts";
import { PacketType, WireError } from "../lib/wire/packets.ts";
import {
  decodeError,
  encodeFrame,
  encodeHello,
  encodeSealedBase,
  ErrorCode,
  V2_FRAMING,
  V2Type,
} from "../lib/wire/packets_v2.ts";
import { NodeRegistry } from "../lib/server/nodes.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { MAX_PAYLOAD_BYTES } from "../lib/format/record.ts";
import net from "node:net";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { SocketBackend, socketUrl } from "../lib/backends/socket/backend.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { ServerStorage } from "../lib/server/storage.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { bumpStatement } from "./support/statements.ts";

/** A header declaring `length` bytes of a packet of `type`, and none of them. */
function header(type: number, length: number): Uint8Array {
  const bytes = new Uint8Array(5);
  bytes[0] = type;
  new DataView(bytes.buffer).setUint32(1, length);
  return bytes;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

Deno.test("before a client proves its key, the server refuses a packet other than HELLO and AUTH at its header, before buffering it", async () => {
  await withServer(async ({ server }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      const reader = new PacketReader(conn, 1 << 20, V2_FRAMING);
      await writeAll(conn, encodeHello({ protocol: 2, node: "alice", nonce: new Uint8Array(32) }));
      assertEquals((await reader.next())?.type, V2Type.Challenge);
      // A SNAPSHOT of 512 MiB where AUTH belongs: taken, it would be buffered whole before its
      // type were looked at (1 GiB by default, on each of 256 unauthenticated connections).
      const started = performance.now();
      await writeAll(conn, header(V2Type.Snapshot, 512 << 20));
      const answer = await reader.next();
      assert(answer, "the server closed without an ERROR");
      const error = decodeError(answer);
      assertEquals(error.code, ErrorCode.BadPacket);
      assertMatch(error.message, /SNAPSHOT declares 536870912 bytes, over its 0/);
      // At once, not at the handshake's timeout.
      assert(performance.now() - started < 5_000);
    } finally {
      conn.close();
    }
  }, { handshakeTimeoutMs: 8_000 });
});

Deno.test("a client refuses a server's CHANGE at its header, before the server proves the node's key", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(1024)); // HELLO
    // 900 MiB the client would buffer before it looked at the type.
    await writeAll(conn, header(V2Type.Change, 900 << 20)).catch(() => {});
    return conn;
  })();
  const started = performance.now();
  const credential = { node: "alice", key: new Uint8Array(32), path: "unused" };
  let thrown: unknown;
  try {
    await WireConnection.open(
      socketUrl(`socket:127.0.0.1:${listener.addr.port}`),
      10_000,
      credential,
    );
  } catch (error) {
    thrown = error;
  } finally {
    (await serving).close();
    listener.close();
  }
  assert(thrown instanceof WireError, `${thrown}`);
  assertMatch(thrown.message, /CHANGE declares 943718400 bytes, over its 0/);
  assert(performance.now() - started < 5_000);
});

Deno.test("the server survives peers that reset their connections before it accepts them", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-hostile-" });
  new NodeRegistry(`${root}/server`).add("alice");
  const port = freePort();
  const server = await spawnServerProcess(`file://${root}/server`, port, ["--allow-plain"]);
  try {
    // Connect, then reset (RST) at once: accept(2) takes the connection from the queue and
    // asking its peer's address then fails (ENOTCONN).
    for (let round = 0; round < 20; round++) {
      await Promise.all(Array.from({ length: 50 }, async () => {
        const socket = net.connect(port, "127.0.0.1");
        await new Promise<void>((resolve) => {
          socket.on("connect", () => {
            socket.resetAndDestroy();
            resolve();
          });
          socket.on("error", () => resolve());
        });
      }));
    }
    // Still serving.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const reader = new PacketReader(conn, 1 << 20, V2_FRAMING);
      await writeAll(conn, encodeHello({ protocol: 2, node: "alice", nonce: new Uint8Array(32) }));
      assertEquals((await reader.next())?.type, V2Type.Challenge);
    } finally {
      conn.close();
    }
  } finally {
    try {
      server.kill("SIGTERM");
    } catch {
      // It crashed.
    }
    const status = await server.status;
    const stderr = new TextDecoder().decode(
      (await new Response(server.stderr).arrayBuffer()) as ArrayBuffer,
    );
    Deno.removeSync(root, { recursive: true });
    assert(!/Uncaught/.test(stderr), stderr);
    assertEquals(status.signal ?? null, null, stderr);
  }
});

Deno.test("restore and verify given a passphrase refuse a plain backup where a server should hold an encrypted one", async () => {
  await withServer(async ({ root, url, nodes, credential }) => {
    const fixture = loadFixture("fresh-start").database;
    const envOf = (node: string) => {
      const { path, key } = credential(node);
      Deno.writeTextFileSync(path, JSON.stringify({ node, key: keyToText(key) }), { mode: 0o600 });
      return { [CREDENTIAL_ENV]: path, [PASSPHRASE_ENV]: PASSPHRASE };
    };
    // Bob's encrypted backup restores with his passphrase.
    await makeEncryptedBackup(nodes.backupDir("bob"), { version: 11, path: fixture });
    const good = await cli(["restore", url, `${root}/good.sqlite3`], envOf("bob"));
    assertEquals(good.code, 0, good.stderr);
    assertEquals(dumpDatabase(`${root}/good.sqlite3`), dumpDatabase(fixture));

    // Alice's was encrypted too, but the server's operator (or whoever took the server) put a
    // plain backup of a database of their making in its place: no key opens it, so none
    // checks it.
    const forged = `${root}/forged.sqlite3`;
    Deno.copyFileSync(fixture, forged);
    const db = new DatabaseSync(forged);
    db.exec("INSERT INTO vars (name, val) VALUES ('forged', 'by the server')");
    db.close();
    createFileBackup(nodes.backupDir("alice"), { version: 11, path: forged });
    const swapped = await cli(["restore", url, `${root}/swapped.sqlite3`], envOf("alice"));
    assertEquals(swapped.code, 1, swapped.stdout);
    assertMatch(swapped.stderr, /is not encrypted, but a passphrase or age identity was given/);
    assert(!existsSync(`${root}/swapped.sqlite3`));
    // verify given the passphrase does not take the server's word for a plain backup either.
    const checked = await cli(["verify", url], envOf("alice"));
    assertEquals(checked.code, 1, checked.stdout);
    assertMatch(checked.stderr, /is not encrypted, but a passphrase or age identity was given/);
  });
});

Deno.test("a node's uploads on several connections at once stay within its quota together", async () => {
  const quota = 4 << 20;
  await withServer(async ({ url, nodes, credential }) => {
    const conns = await Promise.all(
      [0, 1, 2, 3].map(() => WireConnection.open(socketUrl(url), 5_000, credential("alice"))),
    );
    const chunk = encodeFrame(V2Type.Data, new Uint8Array(1 << 20));
    const refused: string[] = [];
    try {
      // Each a base of just under the quota, all sent but its last MiB, and held there: the
      // server has no timeout for an upload once a node is authenticated.
      for (const conn of conns) {
        await conn.send(encodeSealedBase(quota - 1024));
        for (let n = 0; n < 3; n++) await conn.send(chunk).catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 500));
      const dir = nodes.backupDir("alice");
      const held = [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("upload-"))
        .reduce((sum, e) => sum + Deno.statSync(`${dir}/${e.name}`).size, 0);
      assert(held <= quota, `${held} bytes of uploads held against a quota of ${quota}`);
      // One is taken; the others were answered ERROR QUOTA (a wait for the one taken closes it).
      for (const conn of conns) {
        const answer = await conn.receive(300).catch(() => undefined);
        if (answer?.type === V2Type.Error) refused.push(decodeError(answer).message);
      }
      assertEquals(refused.length, 3, refused.join("\n"));
    } finally {
      for (const conn of conns) conn.close();
    }
  }, { quotaBytes: quota });
});

Deno.test("a v1 CHANGE that inflates to 150 MiB of NULs closes its connection, not the server", async () => {
  // 157,286,401 statements: `split` past 2^27 elements aborts V8, the process and every node's
  // backup with it, from one unauthenticated packet of 150 KB.
  const storage = Deno.makeTempDirSync({ prefix: "hostile-split-" });
  const port = freePort();
  const server = await spawnServer(`${storage}/backup`, port);
  try {
    const deflated = deflate(new Uint8Array(150 << 20), 9);
    const change = new Uint8Array(5 + 4 + deflated.length);
    const view = new DataView(change.buffer);
    view.setUint8(0, PacketType.Change);
    view.setUint32(1, 4 + deflated.length);
    view.setUint32(5, 1);
    change.set(deflated, 9);
    const bomb = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(bomb, change);
    // Closed unanswered, as any v1 protocol error.
    assertEquals(await bomb.read(new Uint8Array(16)).catch(() => null), null);
    bomb.close();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await writeAll(conn, Uint8Array.of(PacketType.ReqMetadata, 0, 0, 0, 0));
      const answer = await new PacketReader(conn).next();
      assertEquals(answer?.type, PacketType.Metadata);
    } finally {
      conn.close();
    }
  } finally {
    try {
      server.kill("SIGKILL");
    } catch {
      // Gone already: the abort this test is about.
    }
    await server.status;
    await server.stderr?.cancel();
    Deno.removeSync(storage, { recursive: true });
  }
});

/** The peak resident memory of process `pid` so far (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** A v1 CHANGE at `version` whose one statement is `bytes` of "a", deflated. */
function v1ChangeOf(version: number, bytes: number): Uint8Array {
  const deflated = deflate(new Uint8Array(bytes).fill(0x61), 9);
  const change = new Uint8Array(5 + 4 + deflated.length);
  const view = new DataView(change.buffer);
  view.setUint8(0, PacketType.Change);
  view.setUint32(1, 4 + deflated.length);
  view.setUint32(5, version);
  change.set(deflated, 9);
  return change;
}

Deno.test("v1 CHANGEs from connections that are not the writer are refused before they are inflated", async () => {
  const storage = Deno.makeTempDirSync({ prefix: "hostile-inflate-" });
  const port = freePort();
  const server = await spawnServer(`${storage}/backup`, port);
  const conns: Deno.Conn[] = [];
  try {
    const baseline = peakRss(server.pid);
    const writer = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(writer);
    await writeAll(writer, v1ChangeOf(1, 10));
    assertEquals((await new PacketReader(writer).next())?.type, PacketType.Ack);
    // Each 200 KB on the wire, 200 MiB inflated: 4 connections, 3 each.
    const bomb = v1ChangeOf(2, 200 << 20);
    const answers = await Promise.all(Array.from({ length: 4 }, async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      const reader = new PacketReader(conn);
      const types = [];
      for (let n = 0; n < 3; n++) {
        await writeAll(conn, bomb);
        types.push((await reader.next())?.type);
      }
      return types;
    }));
    assertEquals(answers.flat(), Array(12).fill(PacketType.Nack));
    const grew = peakRss(server.pid) - baseline;
    // Inflated, each would take 200 MiB and more (its string, its statements).
    assert(grew < 150 << 20, `the server's peak memory grew by ${Math.round(grew / 2 ** 20)} MiB`);
  } finally {
    for (const conn of conns) conn.close();
    server.kill("SIGTERM");
    await server.status;
    await server.stderr?.cancel();
    Deno.removeSync(storage, { recursive: true });
  }
});

Deno.test("a CHANGE is inflated no further than a record holds, whatever --max-packet-bytes allows", async () => {
  await withServer(async ({ url, credential }) => {
    const conn = await WireConnection.open(socketUrl(url), 30_000, credential("alice"));
    try {
      // 1 MiB past what a record holds, one statement; 260 KB deflated.
      const deflated = deflate(new Uint8Array(MAX_PAYLOAD_BYTES + (1 << 20)).fill(0x61), 9);
      const payload = new Uint8Array(8 + 1 + deflated.length);
      new DataView(payload.buffer).setBigUint64(0, 1n);
      payload[8] = 1;
      payload.set(deflated, 9);
      await conn.send(encodeFrame(V2Type.Change, payload));
      const answer = await conn.receive();
      assertEquals(answer.type, V2Type.Error);
      const error = decodeError(answer);
      assertEquals(error.code, ErrorCode.BadPacket, error.message);
      assertMatch(error.message, new RegExp(`does not decompress within ${MAX_PAYLOAD_BYTES} `));
    } finally {
      conn.close();
    }
  });
});

Deno.test("idle wire v1 connections are capped: each past the cap closes the one idle longest, never the writer", async () => {
  const storage = Deno.makeTempDirSync({ prefix: "hostile-v1-idle-" });
  const port = freePort();
  const server = await spawnServer(`${storage}/backup`, port);
  const conns: Deno.Conn[] = [];
  const fds = () => [...Deno.readDirSync(`/proc/${server.pid}/fd`)].length;
  try {
    const before = fds();
    const writer = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(writer);
    const writing = new PacketReader(writer);
    await writeAll(writer, v1ChangeOf(1, 10));
    assertEquals((await writing.next())?.type, PacketType.Ack);
    // One byte each: a v1 client, then nothing; there is no handshake to time out.
    for (let n = 0; n < 60; n++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      await writeAll(conn, Uint8Array.of(PacketType.ReqMetadata));
    }
    await new Promise((r) => setTimeout(r, 500));
    const held = fds() - before;
    // The writer and 7 others (8 by default), and a few the runtime opens: not 61.
    assert(held < 20, `the server holds ${held} more file descriptors`);
    await writeAll(writer, v1ChangeOf(2, 10));
    assertEquals((await writing.next())?.type, PacketType.Ack);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(conn);
    await writeAll(conn, Uint8Array.of(PacketType.ReqMetadata, 0, 0, 0, 0));
    assertEquals((await new PacketReader(conn).next())?.type, PacketType.Metadata);
  } finally {
    for (const conn of conns) conn.close();
    server.kill("SIGTERM");
    await server.status;
    await server.stderr?.cancel();
    Deno.removeSync(storage, { recursive: true });
  }
});

Deno.test("a server whose RESTORE sends less than DONE says is refused by restore and status, not taken for the backup", async () => {
  await withServer(async ({ url, credential }) => {
    const alice = await SocketBackend.connect(url, {
      policy: { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 },
      credential: credential("alice"),
    });
    const database = Deno.makeTempFileSync();
    const db = new DatabaseSync(database);
    db.exec(
      "CREATE TABLE vars (name TEXT, intval INTEGER); " +
        "INSERT INTO vars VALUES ('data_version', 4)",
    );
    db.close();
    await alice.storeSnapshot(4, Deno.readFileSync(database));
    Deno.removeSync(database);
    await alice.append({ version: 5, statements: [bumpStatement(4)] });
    // A broken server: its files as they stood at 5, whatever DONE says after.
    const openFiles = ServerStorage.prototype.openFiles;
    let sizes: number[] | undefined;
    ServerStorage.prototype.openFiles = function () {
      const files = openFiles.call(this);
      sizes ??= files.map((f) => f.size);
      files.forEach((f, i) => f.size = Math.min(f.size, sizes![i]));
      return files;
    };
    try {
      (await SocketBackupReader.fetch(url, 5_000, credential("alice"))).close();
      await alice.append({ version: 6, statements: [bumpStatement(5)] });
      const said = new RegExp(
        "^Cannot read backup: socket:.* said it holds version 6, but the files it sent end " +
          "at version 5: try again",
      );
      const reader = await SocketBackupReader.fetch(url, 5_000, credential("alice"));
      const target = `${Deno.makeTempDirSync()}/lightningd.sqlite3`;
      try {
        assertThrows(() => reader.describe(), said);
        assertThrows(() => restoreBackup(reader, target), said);
        assert(!existsSync(target), "nothing restored");
        // Up to a version the copy holds, it restores.
        restoreBackup(reader, target, { toVersion: 5 });
      } finally {
        reader.close();
        Deno.removeSync(dirname(target), { recursive: true });
      }
    } finally {
      ServerStorage.prototype.openFiles = openFiles;
      alice.close();
    }
  });
});
