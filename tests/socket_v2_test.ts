/**
 * Wire v2 end to end: nodes with their own keys on one server, the real plugin under the
 * fake lightningd, restore, status and verify, and every refusal the server owes: no
 * credential, a wrong one, a replayed handshake, one node's key on another's backup, a
 * path-traversal name, v1 where it is not allowed, a credential file others may read,
 * quotas and limits. Each asserts that nothing leaked and nothing changed.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "./support/assert.ts";
import { bumpStatement, cjkText } from "./support/statements.ts";
import { prng } from "./support/prng.ts";
import { dumpDatabase } from "./support/dump.ts";
import type { BackupServer } from "../lib/server/server.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { CREDENTIAL_NAME, credentialIn } from "../lib/backends/socket/credential.ts";
import type { NodeCredential } from "../lib/backends/socket/credential.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { openAtStart } from "../lib/plugin/startup.ts";
import { KEY_BYTES, keyFromText, nonce, prove, randomBytes } from "../lib/wire/handshake.ts";
import net from "node:net";
import { startOlderServer } from "./support/older_server.ts";
import { PacketReader } from "../lib/wire/packet_reader.ts";
import { WireConnection } from "../lib/backends/socket/connection.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import { sendWrappedKey } from "../lib/backends/socket/rekey.ts";
import { deflateSync } from "node:zlib";
import { decodeMetadata, encodePacket, type Packet, PacketType } from "../lib/wire/packets.ts";
import {
  decodeChallenge,
  decodeError,
  decodeJson,
  decodeMetadataV2,
  encodeChangeV2,
  encodeFrame,
  encodeHello,
  encodeSealedBase,
  encodeSnapshotFile,
  ErrorCode,
  PROTOCOL_VERSION,
  V2_FRAMING,
  V2Type,
} from "../lib/wire/packets_v2.ts";
import { startServer } from "./support/wire_server.ts";
import { backUpWithPlugin, withServer } from "./support/v2_server.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { status } from "../lib/cli/status.ts";
import { CliProcess } from "./support/cli_process.ts";
import { server as serverCommand } from "../lib/cli/server.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";

// A second writer waits for a takeover 300 ms here, not minutes.
const POLICY = {
  ...DEFAULT_RETRY_POLICY,
  retries: 0,
  timeoutMs: 5_000,
  retryDelayMs: 50,
  takeoverWaitMs: 300,
};

async function connect(url: string, credential?: NodeCredential): Promise<SocketBackend> {
  return await SocketBackend.connect(url, { policy: POLICY, credential });
}

function restoredDump(reader: { close(): void } & Parameters<typeof restoreBackup>[0]): string {
  const dir = Deno.makeTempDirSync();
  try {
    restoreBackup(reader, `${dir}/db.sqlite3`);
    return dumpDatabase(`${dir}/db.sqlite3`);
  } finally {
    reader.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

/** A raw v2 connection: sends frames, reads frames. */
async function rawV2(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = new PacketReader(conn, 1 << 20, V2_FRAMING);
  return {
    send: async (bytes: Uint8Array) => {
      for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
    },
    next: () => reader.next().catch(() => null),
    close: () => conn.close(),
  };
}

Deno.test("a node writes, rewinds and restores over v2, past 2^32, and sees only its own backup", async () => {
  await withServer(async ({ url, credential, nodes, server }) => {
    const alice = await connect(url, credential("alice"));
    const base = 2 ** 32 + 4;
    const database = Deno.makeTempFileSync();
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(database);
    db.exec(
      "CREATE TABLE vars (name TEXT, intval INTEGER); " +
        `INSERT INTO vars VALUES ('data_version', ${base})`,
    );
    db.close();
    await alice.storeSnapshot(base, Deno.readFileSync(database));
    const change = (version: number, statement: string) => ({
      version,
      statements: [statement, bumpStatement(version - 1)],
    });
    await alice.append(change(base + 1, "INSERT INTO vars VALUES ('w', 0)"));
    await alice.append(change(base + 2, "INSERT INTO vars VALUES ('x', 1)"));
    await alice.rewind();
    await alice.append(change(base + 2, "INSERT INTO vars VALUES ('y', 2)"));
    assertEquals(alice.state().version, base + 2);
    alice.close();

    const reader = await SocketBackupReader.fetch(url, 5_000, credential("alice"));
    assertEquals(reader.describe().lastVersion, base + 2);
    const dump = restoredDump(reader);
    assertMatch(dump, /'y'/);
    assert(!dump.includes("'x'"), "the rewound change is gone");

    // Bob's backup is his own, empty, in its own directory.
    const bob = await connect(url, credential("bob"));
    assertEquals(bob.state().version, 0);
    assertEquals(nodes.list(), ["alice", "bob"]);
    // The metrics show each node's version, and that bob is connected now.
    const stats = server.nodeStats();
    assertEquals(stats.map((s) => [s.node, s.version, s.connections]), [
      ["alice", base + 2, 0],
      ["bob", 0, 1],
    ]);
    assert(stats[0].lastWrite !== undefined && stats[1].lastWrite === undefined);
    bob.close();
    Deno.removeSync(database);
  });
});

Deno.test("status and verify requests answer for the node's backup; a VERIFY that fails is an ERROR", async () => {
  await withServer(async ({ url, credential, server }) => {
    const alice = await connect(url, credential("alice"));
    await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    alice.close();
    const conn = await (await import("../lib/backends/socket/connection.ts")).WireConnection
      .open(
        { scheme: "socket", host: "127.0.0.1", port: server.port } as never,
        // VERIFY restores in a worker the server starts: on a loaded machine (the suite on
        // two cores) that took over 5 s, and the wait's timeout failed the test.
        30_000,
        credential("alice"),
      );
    try {
      await conn.send(encodeFrame(V2Type.Status));
      const status = decodeJson<Record<string, unknown>>(await conn.receive(), V2Type.StatusRes);
      assertEquals([status.node, status.lastVersion, status.records], ["alice", 1, 1]);
      // VERIFY restores it: one change and no snapshot holds no vars.data_version.
      await conn.send(encodeFrame(V2Type.Verify));
      const failed = decodeError(await conn.receive());
      assertEquals([failed.code, failed.version], [ErrorCode.Failed, 1]);
      assertMatch(failed.message, /^VERIFY failed: .*data_version/);
      // The connection goes on.
      await conn.send(encodeFrame(V2Type.Status));
      assertEquals(
        decodeJson<{ records: number }>(await conn.receive(), V2Type.StatusRes).records,
        1,
      );
    } finally {
      conn.close();
    }
  });
});

Deno.test("refused: no credential, a wrong key, another node's key, a traversal name", async () => {
  await withServer(async ({ url, credential, server, logs, nodes }) => {
    const alice = await connect(url, credential("alice"));
    await alice.append({ version: 1, statements: ["CREATE TABLE secret (a)"] });
    alice.close();
    // No credential: a v1 client, which this server does not serve.
    await assertRejects(() => connect(url), /refused wire v1 \(NACK\).*backup\.credential/);
    assert(logs.some((l) => /speaks wire v1, which this server does not serve/.test(l)));
    // The CLI's reader without one is told what to set.
    await assertRejects(
      () => SocketBackupReader.fetch(url, 5_000, undefined),
      /without a node credential: set CLN_BACKUP_CREDENTIAL to the node's backup\.credential/,
    );
    // status says it as its other errors: "Cannot show the backup's status: ...".
    const output = new BufferedOutput();
    assertEquals(await status([url], output), 1);
    assertMatch(
      output.transcript,
      /^Cannot show the backup's status: the server refused a client without a node credential/,
    );
    // A wrong key.
    const wrong = { ...credential("alice"), key: new Uint8Array(32).fill(9) };
    await assertRejects(
      () => connect(url, wrong),
      /does not accept this credential for node "alice"/,
    );
    // Bob's key, used as alice.
    const bobAsAlice = { ...credential("bob"), node: "alice" };
    await assertRejects(() => connect(url, bobAsAlice), /does not accept this credential/);
    // Alice's key on a name that climbs out of the root.
    for (const node of ["../server/nodes/alice", "alice/../bob", ".."]) {
      const traversal = { ...credential("alice"), node };
      await assertRejects(() => connect(url, traversal), /does not accept this credential/);
    }
    // Nothing of alice's backup reached anyone, and nothing changed.
    const after = await connect(url, credential("alice"));
    assertEquals(after.state().version, 1);
    after.close();
    assert(!Deno.readDirSync(nodes.root).some((e) => e.name !== "nodes"));
    assertEquals(server.port > 0, true);
  });
});

Deno.test("a replayed handshake is refused: the server's nonce is new each time", async () => {
  await withServer(async ({ server, credential }) => {
    const { node, key } = credential("alice");
    const { prove, nonce } = await import("../lib/wire/handshake.ts");
    const { decodeChallenge } = await import("../lib/wire/packets_v2.ts");
    const clientNonce = nonce();
    const first = await rawV2(server.port);
    await first.send(encodeHello({ protocol: 2, node, nonce: clientNonce }));
    const challenge = decodeChallenge((await first.next())!);
    const auth = encodeFrame(
      V2Type.Auth,
      await prove(key, "client", { node, clientNonce, serverNonce: challenge.nonce }),
    );
    await first.send(auth);
    assertEquals((await first.next())?.type, V2Type.Welcome);
    first.close();
    // An eavesdropper replays both packets on a new connection.
    const replay = await rawV2(server.port);
    await replay.send(encodeHello({ protocol: 2, node, nonce: clientNonce }));
    assertEquals((await replay.next())?.type, V2Type.Challenge);
    await replay.send(auth);
    const answer = (await replay.next())!;
    assertEquals(answer.type, V2Type.Error);
    assertEquals(decodeError(answer).code, ErrorCode.Unauthorized);
    // It gets no further: a CHANGE after the refusal finds the connection closed.
    await replay.send(encodeChangeV2(1, ["DROP TABLE x"])).catch(() => {});
    assertEquals(await replay.next(), null);
    replay.close();
  });
});

Deno.test("limits: a quota refuses a write and keeps what is stored; failed authentications turn an address away, never loopback", async () => {
  await withServer(async ({ url, credential, server }) => {
    const alice = await connect(url, credential("alice"));
    await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    const big = `INSERT INTO t VALUES ('${"z".repeat(8000)}')`;
    await assertRejects(() => alice.append({ version: 2, statements: [big] }), /quota/);
    alice.close();
    const again = await connect(url, credential("alice"));
    assertEquals(again.state().version, 1);
    again.close();
    const wrong = { ...credential("bob"), key: new Uint8Array(32) };
    for (let i = 0; i < 3; i++) {
      await assertRejects(() => connect(url, wrong), /does not accept/);
    }
    // From loopback, where every peer of a Tor onion service or a local proxy comes from, the
    // right key still goes in: anyone could otherwise keep every node out.
    (await connect(url, credential("bob"))).close();
    // Another address is turned away for the rest of the minute.
    const now = performance.now();
    for (let i = 0; i < 3; i++) server.authFailed("203.0.113.7", now);
    assert(server.authBlocked("203.0.113.7", now + 59_000));
    assertEquals(server.authBlocked("203.0.113.7", now + 61_000), false);
    for (let i = 0; i < 3; i++) server.authFailed("::1", now);
    assertEquals(server.authBlocked("::1", now), false);
  }, { quotaBytes: 4096, failedAuthsPerMinute: 3 });
});

Deno.test("a peer whose address failed too often is turned away only when it fails again: a node that proves its key goes in", async () => {
  await withServer(async ({ server, url, credential, logs }) => {
    // As for a node whose /64 (or IPv4 address) a failing neighbour shares; loopback, where
    // tests run, is never blocked itself.
    server.authBlocked = () => true;
    (await connect(url, credential("alice"))).close();
    const wrong = { ...credential("bob"), key: new Uint8Array(32) };
    const warned = logs.filter((l) => /no valid proof/.test(l)).length;
    await assertRejects(() => connect(url, wrong), /too many failed authentications from/);
    assertEquals(logs.filter((l) => /no valid proof/.test(l)).length, warned, "not logged");
  });
});

Deno.test("limits: failed authentications count by IPv6 /64, and an IPv4-mapped peer as its IPv4 address", async () => {
  await withServer(({ server }) => {
    const now = performance.now();
    // Three addresses of one /64 (one subscriber's, one rented server's) are one peer.
    for (const i of [1, 2, 3]) server.authFailed(`2001:db8:1:2::${i}`, now);
    assert(server.authBlocked("2001:db8:1:2:ffff::9", now));
    assertEquals(server.authBlocked("2001:db8:1:3::1", now), false);
    server.authFailed("203.0.113.7", now);
    server.authFailed("203.0.113.7", now);
    server.authFailed("::ffff:203.0.113.7", now);
    assert(server.authBlocked("203.0.113.7", now));
    assert(server.authBlocked("::ffff:203.0.113.7", now));
    assertEquals(server.authBlocked("203.0.113.8", now), false);
    return Promise.resolve();
  }, { failedAuthsPerMinute: 3 });
});

Deno.test("limits: past the pending connections, the oldest is closed, so idle peers cannot keep a node out", async () => {
  await withServer(async ({ url, credential, server, logs }) => {
    const idle = await Promise.all(
      Array.from({ length: 8 }, () => Deno.connect({ hostname: "127.0.0.1", port: server.port })),
    );
    try {
      // Accepted and counted before the node comes.
      await new Promise((r) => setTimeout(r, 200));
      const alice = await connect(url, credential("alice"));
      await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
      alice.close();
      // The oldest idle one went for her.
      assertEquals(await idle[0].read(new Uint8Array(8)).catch(() => null), null);
      assert(
        logs.some((l) => /8 connections are awaiting a handshake: closing the oldest/.test(l)),
      );
    } finally {
      for (const conn of idle) conn.close();
    }
  }, { pendingConnections: 8 });
});

/** A TCP connection to the server from `localAddress` (all of 127/8 is loopback's). */
function connectFrom(localAddress: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
      socket.off("error", reject);
      // Closed by the server: a reset, looked at through `closed`.
      socket.on("error", () => {});
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

Deno.test("limits: past the pending connections, the address holding the most makes way, not a node's handshake from another", async () => {
  await withServer(async ({ server, credential, logs }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const flood: net.Socket[] = [];
    const closed = new Set<net.Socket>();
    try {
      const { key } = credential("alice");
      const clientNonce = nonce();
      await conn.write(
        encodeHello({ protocol: PROTOCOL_VERSION, node: "alice", nonce: clientNonce }),
      );
      const reader = new PacketReader(conn);
      reader.framing = V2_FRAMING;
      const challenge = decodeChallenge((await reader.next())!);
      // Her handshake under way, the oldest pending one, 20 idle ones come from 127.0.0.2.
      for (let i = 0; i < 20; i++) {
        const socket = await connectFrom("127.0.0.2", server.port);
        socket.once("close", () => closed.add(socket));
        flood.push(socket);
      }
      await new Promise((r) => setTimeout(r, 300));
      const input = { node: "alice", clientNonce, serverNonce: challenge.nonce };
      await conn.write(encodeFrame(V2Type.Auth, await prove(key, "client", input)));
      assertEquals((await reader.next().catch(() => null))?.type, V2Type.Welcome, logs.join("\n"));
      // The flood paid: its 13 oldest (20 + 1 past 8) were closed, its newest 7 wait.
      assertEquals(flood.map((s) => closed.has(s)), flood.map((_, i) => i < 13));
      assert(
        logs.some((l) => /8 connections are awaiting a handshake: closing the oldest/.test(l)),
        logs.join("\n"),
      );
    } finally {
      conn.close();
      for (const socket of flood) socket.destroy();
    }
  }, { pendingConnections: 8 });
});

Deno.test("limits: the handshake's time counts from the connection's accept, not from each packet", async () => {
  await withServer(async ({ server, logs }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      await sleep(300);
      const hello = encodeHello({ protocol: PROTOCOL_VERSION, node: "alice", nonce: nonce() });
      await conn.write(hello);
      const reader = new PacketReader(conn);
      reader.framing = V2_FRAMING;
      assertEquals((await reader.next())?.type, V2Type.Challenge);
      // 600 ms after the accept: past the handshake's 500, though each packet came within it.
      await sleep(300);
      await conn.write(encodeFrame(V2Type.Auth, new Uint8Array(32))).catch(() => 0);
      assertEquals(await reader.next().catch(() => null), null);
      assert(logs.some((l) => /no handshake in time/.test(l)));
    } finally {
      conn.close();
    }
  }, { handshakeTimeoutMs: 500 });
});

Deno.test("limits: the quota counts a change's stored bytes, not its characters", async () => {
  // Changes under 512 bytes are stored raw, with a record header each (cjkText: 450 bytes of
  // 150 characters).
  const quota = 8192;
  await withServer(async ({ url, credential, server }) => {
    const alice = await connect(url, credential("alice"));
    await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    let version = 1;
    for (;; version++) {
      const statement = `INSERT INTO t VALUES ('${cjkText(version)}')`;
      try {
        await alice.append({ version: version + 1, statements: [statement] });
      } catch (error) {
        assertMatch((error as Error).message, /quota/);
        break;
      }
    }
    assert(version > 10, `refused after ${version} changes`);
    const held = server.storageFor("alice").state().bytes;
    assert(held <= quota, `${held} bytes held under a quota of ${quota}`);
    alice.close();
  }, { quotaBytes: quota });
});

Deno.test("limits: a compaction's upload in flight does not make the node's writes pass the quota", async () => {
  // An encrypted backup's compaction uploads its base (SEALED_BASE) on a connection of its
  // own while the node writes on another (lib/backends/socket/sealed_compaction.ts); a write
  // refused for the quota stops the node.
  const quota = 64 << 10;
  await withServer(async ({ url, credential, server }) => {
    const alice = await connect(url, credential("alice"));
    const compaction = await WireConnection.open(socketUrl(url), 5_000, credential("alice"));
    try {
      await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
      const held = server.storageFor("alice").state().bytes;
      // A base that leaves 1 KiB of the quota, its first half sent and the rest to come.
      const size = quota - held - 1024;
      await compaction.send(encodeSealedBase(size));
      await compaction.send(encodeFrame(V2Type.Data, new Uint8Array(size >> 1)));
      await new Promise((r) => setTimeout(r, 200));
      // 2 KiB more: within the quota as the backup stands.
      const statement = `INSERT INTO t VALUES ('${cjkText(1)}${cjkText(2)}${cjkText(3)}${
        cjkText(4)
      }')`;
      await alice.append({ version: 2, statements: [statement] });
      assert(server.storageFor("alice").state().bytes <= quota);
    } finally {
      compaction.close();
      alice.close();
    }
  }, { quotaBytes: quota });
});

Deno.test("limits: a rewind goes in over the quota, which it cannot pass", async () => {
  await withServer(async ({ url, credential, server }) => {
    const alice = await connect(url, credential("alice"));
    await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    await alice.append({ version: 2, statements: ["INSERT INTO t VALUES (1)"] });
    // The operator lowers the quota below what the backup holds.
    server.limits.quotaBytes = 1;
    await assertRejects(
      () => alice.append({ version: 3, statements: ["INSERT INTO t VALUES (2)"] }),
      /quota/,
    );
    alice.close();
    const again = await connect(url, credential("alice"));
    await again.rewind();
    assertEquals(again.state().version, 1);
    again.close();
  }, { quotaBytes: 1 << 20 });
});

Deno.test("a snapshot over the server's packet limit is refused in words, not a broken pipe", async () => {
  const limit = 1 << 20;
  await withServer(
    async ({ url, credential }) => {
      const alice = await connect(url, credential("alice"));
      // Random bytes stay large once deflated: the server refuses the packet at its header and
      // closes while most of it is still to be sent.
      const random = prng(5);
      const database = new Uint8Array(16 << 20).map(() => random() * 256);
      const error = await assertRejects(() => alice.storeSnapshot(5, database));
      assertMatch(
        error.message,
        new RegExp(`over its ${limit} \\(this server's --max-packet-bytes\\)`),
      );
      alice.close();
      const again = await connect(url, credential("alice"));
      assertEquals(again.state().version, 0);
      again.close();
    },
    {},
    { maxPayloadBytes: limit },
  );
});

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A database of about `bytes`, in random blobs (they stay large once deflated). */
async function randomDatabase(bytes: number): Promise<string> {
  const path = Deno.makeTempFileSync({ suffix: ".sqlite3" });
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE vars (name TEXT, intval INTEGER); CREATE TABLE b (x BLOB);");
  db.exec("INSERT INTO vars VALUES ('data_version', 7)");
  const random = prng(9);
  const insert = db.prepare("INSERT INTO b VALUES (?)");
  for (let done = 0; done < bytes; done += 4000) {
    insert.run(new Uint8Array(4000).map(() => random() * 256));
  }
  db.close();
  return path;
}

Deno.test("init's snapshot goes as a file: past the packet limit, a chunk at a time; it restores equal", async () => {
  const limit = 1 << 20;
  const database = await randomDatabase(3 << 20);
  const scratch = Deno.makeTempDirSync();
  try {
    await withServer(
      async ({ url, credential, logs }) => {
        const alice = await connect(url, credential("alice"));
        await alice.storeSnapshotFile(7, database, scratch);
        assertEquals(alice.state().version, 7);
        // Into an empty backup only, refused before its bytes are taken.
        await assertRejects(
          () => alice.storeSnapshotFile(7, database, scratch),
          /empty backup only/,
        );
        alice.close();
        assert(logs.some((l) => /SNAPSHOT_FILE 7/.test(l)));
        assertEquals([...Deno.readDirSync(scratch)], []);
        const reader = await SocketBackupReader.fetch(url, 5_000, credential("alice"));
        assertEquals(restoredDump(reader), dumpDatabase(database));
      },
      {},
      { maxPayloadBytes: limit },
    );
  } finally {
    Deno.removeSync(database);
    Deno.removeSync(scratch, { recursive: true });
  }
});

Deno.test("init against a server older than SNAPSHOT_FILE and SEALED_INIT_FILE says to update it", async () => {
  const key = randomBytes(KEY_BYTES);
  const older = startOlderServer(key);
  const database = await randomDatabase(100_000);
  const scratch = Deno.makeTempDirSync();
  try {
    const credential = { node: "alice", key, path: `${scratch}/alice.credential` };
    const inits: [string, (b: SocketBackend) => Promise<void>][] = [
      ["SNAPSHOT_FILE", (b) => b.storeSnapshotFile(3, database, scratch)],
      ["SEALED_INIT_FILE", (b) => b.initSealed(new TextEncoder().encode("{}"), database, 3)],
    ];
    for (const [packet, init] of inits) {
      const backend = await connect(older.url, credential);
      await assertRejects(
        () => init(backend),
        new RegExp(`older than this cln-backup and does not know ${packet}: update the server`),
      );
      backend.close();
    }
    // The deflated copy of the snapshot went too.
    assertEquals([...Deno.readDirSync(scratch)], []);
  } finally {
    await older.close();
    Deno.removeSync(database);
    Deno.removeSync(scratch, { recursive: true });
  }
});

Deno.test("rekey against a server older than SEALED_KEY_IF sends SEALED_KEY, which it takes: unchecked", async () => {
  const key = randomBytes(KEY_BYTES);
  const older = startOlderServer(key);
  try {
    const credential = { node: "alice", key, path: "unused" };
    const wrappedKey = new TextEncoder().encode('{"the new": "key.json"}');
    const read = new TextEncoder().encode('{"the old": "key.json"}');
    const sent = await sendWrappedKey(socketUrl(older.url), credential, read, wrappedKey, 5_000);
    assertEquals([sent, older.sealedKeys], ["unchecked", [wrappedKey]]);
  } finally {
    await older.close();
  }
});

Deno.test("init over v2 killed before backup.lock: the rerun finds its snapshot on the server", async () => {
  await withServer(async ({ url, nodes, root }) => {
    const dir = makeNodeDir("restart");
    try {
      const line = JSON.stringify({ node: "carol", key: nodes.add("carol") });
      Deno.writeTextFileSync(`${dir}/${CREDENTIAL_NAME}`, line, { mode: 0o600 });
      const killed = new CliProcess(["init", url, "--lightning-dir", dir], {
        action: "crash",
        step: "init-before-lock",
      });
      assertEquals((await killed.result()).signal, "SIGKILL");
      const output = new BufferedOutput();
      assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.transcript);
      assertMatch(output.stdout[0], /^Found the backup .* an interrupted init left, .* version 15/);
      const reader = await SocketBackupReader.fetch(url, 5_000, credentialIn(dir), root);
      assertEquals(restoredDump(reader), dumpDatabase(`${dir}/lightningd.sqlite3`));
    } finally {
      removeNodeDir(dir);
    }
  });
});

/** Sends alice's SNAPSHOT_FILE of version 3 holding `bytes` as they are; returns the answer. */
async function sendSnapshotFile(
  url: string,
  credential: NodeCredential,
  bytes: Uint8Array,
): Promise<Packet> {
  const conn = await WireConnection.open(socketUrl(url), 5_000, credential);
  try {
    await conn.send(encodeSnapshotFile(3, bytes.length));
    await conn.send(encodeFrame(V2Type.Data, bytes));
    return await conn.receive();
  } finally {
    conn.close();
  }
}

Deno.test("a SNAPSHOT_FILE whose bytes do not inflate is refused, and the backup stays empty", async () => {
  await withServer(async ({ url, credential, nodes }) => {
    const garbage = new Uint8Array(5000).fill(7);
    const random = prng(3);
    const cut = deflateSync(new Uint8Array(9000).map(() => random() * 256)).subarray(0, 4000);
    for (const bytes of [garbage, cut]) {
      const reply = await sendSnapshotFile(url, credential("alice"), bytes);
      assertEquals(reply.type, V2Type.Error);
      assertMatch(decodeError(reply).message, /SNAPSHOT_FILE 3 does not decompress/);
    }
    const alice = await connect(url, credential("alice"));
    assertEquals(alice.state().version, 0);
    alice.close();
    const dir = nodes.backupDir("alice");
    assertEquals([...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".tmp")), []);
  });
});

Deno.test("a SNAPSHOT_FILE inflates no further than the quota leaves; one cut short leaves nothing", async () => {
  await withServer(async ({ url, credential, nodes, logs }) => {
    const temporaries = () =>
      [...Deno.readDirSync(nodes.backupDir("alice"))].filter((e) => e.name.endsWith(".tmp"));
    // 8 MiB of zeros deflate to 8 KB: within the quota as sent, far past it inflated.
    const bomb = deflateSync(new Uint8Array(8 << 20));
    const reply = await sendSnapshotFile(url, credential("alice"), bomb);
    assertEquals(reply.type, V2Type.Error);
    assertEquals(decodeError(reply).code, ErrorCode.Quota);
    assertMatch(decodeError(reply).message, /quota of 200000 bytes/);
    // A client that goes away part way.
    const conn = await WireConnection.open(socketUrl(url), 5_000, credential("alice"));
    await conn.send(encodeSnapshotFile(3, 100_000));
    await conn.send(encodeFrame(V2Type.Data, new Uint8Array(1_000)));
    conn.close();
    const left = /left 99000 bytes of an upload unsent/;
    for (let i = 0; i < 100 && !logs.some((l) => left.test(l)); i++) await delay(20);
    assert(logs.some((l) => left.test(l)), logs.join("\n"));
    assertEquals(temporaries(), []);
    const alice = await connect(url, credential("alice"));
    assertEquals(alice.state().version, 0);
    alice.close();
  }, { quotaBytes: 200_000 });
});

Deno.test("remove-node closes the node's open connections: a revoked key outlives none", async () => {
  await withServer(async ({ url, credential, nodes, logs }) => {
    const alice = await connect(url, credential("alice"));
    const bob = await connect(url, credential("bob"));
    await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    await bob.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    nodes.remove("alice");
    const by = Date.now() + 5_000;
    while (!logs.some((l) => /node alice's key was removed/.test(l)) && Date.now() < by) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assertMatch(
      logs.join("\n"),
      /warning: connection \d+ from .* \(node alice\): closing: node alice's key was removed \(server remove-node\); its backup stays/,
    );
    // Its writes stop there, and reconnecting (as the plugin does) finds the key refused.
    await assertRejects(
      () => alice.append({ version: 2, statements: ["INSERT INTO t VALUES (1)"] }),
      /the server closed the connection/,
    );
    alice.close();
    await assertRejects(
      () => connect(url, credential("alice")),
      /does not accept this credential for node "alice"/,
    );
    // Bob's connection goes on.
    await bob.append({ version: 2, statements: ["INSERT INTO t VALUES (1)"] });
    bob.close();
  });
});

Deno.test("remove-node, the backup moved away, add-node: a running server gives the name a new backup, and leaves the old one be", async () => {
  await withServer(async ({ url, credential, nodes, root, logs }) => {
    const alice = await connect(url, credential("alice"));
    await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    await alice.append({ version: 2, statements: ["INSERT INTO t VALUES (1)"] });
    alice.close();
    nodes.remove("alice");
    Deno.renameSync(nodes.backupDir("alice"), `${root}/alice-archived`);
    const key = keyFromText(nodes.add("alice"))!;
    const fresh = await connect(url, { node: "alice", key, path: `${root}/alice.credential` });
    assertEquals(fresh.state().version, 0, logs.join("\n"));
    await fresh.append({ version: 1, statements: ["CREATE TABLE u (b)"] });
    fresh.close();
    const last = (dir: string) => new FileBackupReader(`file://${dir}`, dir).describe().lastVersion;
    assertEquals(last(nodes.backupDir("alice")), 1);
    assertEquals(last(`${root}/alice-archived`), 2);
  });
});

Deno.test("a key the server cannot read refuses that node in words, on both sides", async () => {
  await withServer(async ({ url, credential, nodes, logs }) => {
    // As a key another user made would be (a directory here, as tests run as root).
    Deno.removeSync(`${nodes.root}/nodes/bob/key`);
    Deno.mkdirSync(`${nodes.root}/nodes/bob/key`);
    await assertRejects(
      () => connect(url, credential("bob")),
      /the server cannot use node "bob"'s key: its operator must fix that \(see the server's log\)/,
    );
    assertMatch(
      logs.join("\n"),
      /error: connection \d+ from .*: refused: cannot read node bob's key ".*\/nodes\/bob\/key": is a directory: .*run chown -R \d+:\d+ ".*\/nodes\/bob"/,
    );
    (await connect(url, credential("alice"))).close();
  });
});

Deno.test("a node key others may read refuses that node alone, naming the chmod; the others are served", async () => {
  await withServer(async ({ url, credential, nodes, logs }) => {
    const key = `${nodes.root}/nodes/bob/key`;
    Deno.chmodSync(key, 0o644);
    await assertRejects(
      () => connect(url, credential("bob")),
      /the server cannot use node "bob"'s key: its operator must fix that/,
    );
    assertMatch(
      logs.join("\n"),
      new RegExp(
        `error: connection \\d+ from .*: refused: node bob's key "${key}" may be read by ` +
          `other users \\(mode 0644\\): run chmod 600 "${key}"`,
      ),
    );
    (await connect(url, credential("alice"))).close();
    Deno.chmodSync(key, 0o600);
    (await connect(url, credential("bob"))).close();
  });
});

Deno.test("a key read that fails for a passing reason (no file descriptor left) is retried, not refused", async () => {
  await withServer(async ({ url, credential, nodes, logs }) => {
    const read = Deno.readTextFileSync;
    let failures = 1;
    Deno.readTextFileSync = (path) => {
      if (String(path).endsWith("/nodes/alice/key") && failures-- > 0) {
        throw Object.assign(new Error(`Too many open files (os error 24): readfile '${path}'`), {
          code: "EMFILE",
        });
      }
      return read(path);
    };
    try {
      // The plugin's own policy: it reconnects, and the server takes it once the key reads.
      const alice = await SocketBackend.connect(url, {
        policy: { ...DEFAULT_RETRY_POLICY, retries: 2, retryDelayMs: 10, timeoutMs: 5_000 },
        credential: credential("alice"),
      });
      await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
      alice.close();
    } finally {
      Deno.readTextFileSync = read;
    }
    assertMatch(
      logs.join("\n"),
      new RegExp(
        `error: connection \\d+ from .*: cannot read node alice's key "${nodes.root}/nodes/alice/key": too many open files`,
      ),
    );
  });
});

Deno.test("COMPACT over v2 is logged: who asked, and what it folded and freed", async () => {
  await withServer(async ({ url, credential, logs }) => {
    const alice = await connect(url, credential("alice"));
    await alice.append({
      version: 1,
      statements: [
        "CREATE TABLE vars (name TEXT, intval INTEGER)",
        "INSERT INTO vars VALUES ('data_version', 1)",
      ],
    });
    for (let v = 2; v <= 5; v++) {
      await alice.append({ version: v, statements: [bumpStatement(v - 1)] });
    }
    const stats = await alice.compactOnServer();
    alice.close();
    const text = logs.join("\n");
    assertMatch(
      text,
      /info: connection \d+ from .* \(node alice\): COMPACT: compacting the backup beside the writes/,
    );
    assertMatch(
      text,
      new RegExp(
        `info: connection \\d+ from .* \\(node alice\\): compacted in [\\d.]+ s: ` +
          `${stats.versions_folded} change\\(s\\) folded into base ${stats.base_version}, ` +
          `${stats.bytes_freed} bytes freed`,
      ),
    );
  });
});

Deno.test("a node's connect and disconnect lines both name the node", async () => {
  await withServer(async ({ url, credential, logs }) => {
    const bob = await connect(url, credential("bob"));
    await bob.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    bob.close();
    const by = Date.now() + 5_000;
    while (!logs.some((l) => /: disconnected$/.test(l)) && Date.now() < by) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assertMatch(logs.join("\n"), /info: connection (\d+) from .* \(node bob\): authenticated/);
    assertMatch(logs.join("\n"), /info: connection \d+ from .* \(node bob\): disconnected$/m);
  });
});

Deno.test("a second writer of a node is refused with what to do, on both sides", async () => {
  await withServer(async ({ url, credential, logs }) => {
    const first = await connect(url, credential("alice"));
    await first.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    const second = await connect(url, credential("alice"));
    const advice = `stop the other node that uses node alice's credential \\(each node needs ` +
      `its own: "server add-node"\\); if it is this node's own connection, left open when its ` +
      `host or network went down, it is taken over once silent for 90 s: start the node again ` +
      `then`;
    await assertRejects(
      () => second.append({ version: 2, statements: ["INSERT INTO t VALUES (1)"] }),
      new RegExp(`is writing to this backup, and a backup has one writer: ${advice}`),
    );
    second.close();
    assertMatch(
      logs.join("\n"),
      new RegExp(
        `error: connection \\d+ .*\\(node alice\\): refused version 2: connection \\d+ ` +
          `.*\\(node alice\\) is writing to this backup, and a backup has one writer: ${advice}`,
      ),
    );
    first.close();
  });
});

Deno.test("a writer silent past the limit is taken over by its node's next connection; one with heartbeats is not", async () => {
  const open = (url: string, credential: NodeCredential, heartbeatMs: number) =>
    SocketBackend.connect(url, { policy: { ...POLICY, heartbeatMs }, credential });
  await withServer(async ({ url, credential, logs }) => {
    // A live plugin: its heartbeats keep it the writer however long it has nothing to write.
    const live = await open(url, credential("alice"), 50);
    await live.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    await delay(700);
    const other = await open(url, credential("alice"), 0);
    await assertRejects(
      () => other.append({ version: 2, statements: ["INSERT INTO t VALUES (2)"] }),
      /is writing to this backup, and a backup has one writer/,
    );
    other.close();
    live.close();

    // A connection its node left when its host went down, after a heartbeat: open here, silent.
    const left = await WireConnection.open(socketUrl(url), 5_000, credential("alice"));
    assertEquals(
      (await left.request(encodeChangeV2(2, ["INSERT INTO t VALUES (2)"]))).type,
      V2Type.Ack,
    );
    assertEquals((await left.request(encodeFrame(V2Type.ReqMetadata))).type, V2Type.Metadata);
    await delay(400);
    const back = await open(url, credential("alice"), 0);
    await back.append({ version: 3, statements: ["INSERT INTO t VALUES (3)"] });
    assertEquals(back.state().version, 3);
    back.close();
    left.close();
    assertMatch(
      logs.join("\n"),
      /warning: connection \d+ .*\(node alice\): takes over .* from connection \d+ .*\(node alice\), silent for 0 s \(left open when its node's host or network went down\); closing that one/,
    );
    assertEquals(logs.filter((l) => / takes over /.test(l)).length, 1);
  }, { writerSilenceMs: 300 });
});

Deno.test("a node restarted before its old connection is taken over waits for it, then writes", async () => {
  await withServer(async ({ url, credential, logs }) => {
    // The connection of a node whose host lost power: it heartbeat, then fell silent, open here.
    const left = await WireConnection.open(socketUrl(url), 5_000, credential("alice"));
    assertEquals(
      (await left.request(encodeChangeV2(1, ["CREATE TABLE t (a)"]))).type,
      V2Type.Ack,
    );
    assertEquals((await left.request(encodeFrame(V2Type.ReqMetadata))).type, V2Type.Metadata);
    // The node is back at once, well before the server would hand its backup over; its
    // reconnects' pause of 0 does not make it send again without a pause.
    const pluginLog: string[] = [];
    const back = await SocketBackend.connect(url, {
      policy: { ...POLICY, heartbeatMs: 0, retryDelayMs: 0, takeoverWaitMs: 10_000 },
      credential: credential("alice"),
      log: (level, message) => pluginLog.push(`${level}: ${message}`),
    });
    await back.append({ version: 2, statements: ["INSERT INTO t VALUES (2)"] });
    assertEquals(back.state().version, 2);
    back.close();
    left.close();
    assertMatch(
      pluginLog.join("\n"),
      /^unusual: change 2: connection \d+ .*\(node alice\) is writing to this backup, and a backup has one writer: waiting up to 10 s for the server to hand it over/m,
    );
    // The wait's end is said too: the operator's last line is not the one that it began.
    assertMatch(
      pluginLog.at(-1)!,
      /^info: change 2: the server handed the backup over after \d+ s: writing again$/,
    );
    assertEquals(pluginLog.filter((l) => /handed the backup over/.test(l)).length, 1);
    assertEquals(logs.filter((l) => / takes over /.test(l)).length, 1);
    assertEquals(logs.filter((l) => /refused version 2/.test(l)).length, 1);
  }, { writerSilenceMs: 600 });
});

Deno.test("a writer busy until its host went down, never idle long enough for a heartbeat, is taken over too", async () => {
  await withServer(async ({ url, credential, logs }) => {
    // It heartbeats once at connect: the server knows it is a plugin that heartbeats.
    const busy = await SocketBackend.connect(url, {
      policy: { ...POLICY, heartbeatMs: 60_000 },
      credential: credential("alice"),
    });
    for (let v = 1; v <= 5; v++) {
      await busy.append({
        version: v,
        statements: [v === 1 ? "CREATE TABLE t (a)" : `SELECT ${v}`],
      });
    }
    await delay(400); // its host is gone; the connection still looks open here
    const back = await SocketBackend.connect(url, {
      policy: { ...POLICY, heartbeatMs: 0 },
      credential: credential("alice"),
    });
    await back.append({ version: 6, statements: ["INSERT INTO t VALUES (6)"] });
    back.close();
    busy.close();
    assertEquals(logs.filter((l) => / takes over /.test(l)).length, 1);
  }, { writerSilenceMs: 300 });
});

Deno.test("a plugin from before heartbeats, alive and idle past the limit, is not taken over: its next change is its own", async () => {
  const policy = { ...POLICY, retries: 1, retryDelayMs: 10, heartbeatMs: 0 };
  await withServer(async ({ url, credential }) => {
    // Never asks REQ_METADATA, as an older plugin; a second node with its credential (a copy).
    const older = await SocketBackend.connect(url, { policy, credential: credential("alice") });
    await older.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    await delay(400);
    // Such a writer is never taken over: the copy is refused at once, not made to wait.
    const copyLog: string[] = [];
    const copy = await SocketBackend.connect(url, {
      policy: { ...policy, takeoverWaitMs: 60_000 },
      credential: credential("alice"),
      log: (_, message) => copyLog.push(message),
    });
    await assertRejects(
      () => copy.append({ version: 2, statements: ["INSERT INTO t VALUES ('copy')"] }),
      /is writing to this backup, and a backup has one writer/,
    );
    copy.close();
    assertEquals(copyLog.filter((m) => /waiting up to/.test(m)), []);
    // Taken over, its connection closed, it would reconnect, find version 2 (the copy's), and
    // count its own change 2 as stored.
    await older.append({ version: 2, statements: ["INSERT INTO t VALUES ('older')"] });
    assertEquals(older.state().connection?.reconnects, 0);
    older.close();
  }, { writerSilenceMs: 300 });
});

Deno.test("a backup closed while it connects keeps no connection, and no heartbeat", async () => {
  await withServer(async ({ url, credential }) => {
    const alice = SocketBackend.open(url, {
      policy: { ...POLICY, heartbeatMs: 50 },
      credential: credential("alice"),
    });
    alice.close();
    await alice.ready().catch(() => {});
    await delay(200);
    assertEquals(alice.state().connection?.state, "disconnected");
  });
});

Deno.test("a heartbeat finds a connection the server closed while the node had nothing to write", async () => {
  await withServer(async ({ url, credential, server }) => {
    const logs: string[] = [];
    const alice = await SocketBackend.connect(url, {
      policy: { ...POLICY, heartbeatMs: 50 },
      credential: credential("alice"),
      log: (level, message) => logs.push(`${level}: ${message}`),
    });
    await alice.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    await server.close();
    const by = Date.now() + 5_000;
    while (logs.length === 0 && Date.now() < by) await delay(20);
    alice.close();
    assertMatch(
      logs.join("\n"),
      /^unusual: heartbeat to 127\.0\.0\.1:\d+ .*: .*; the next change reconnects$/,
    );
  });
});

Deno.test("a node holds at most its connections; a silent client is dropped after the handshake time", async () => {
  await withServer(async ({ url, credential, server, logs }) => {
    const first = await connect(url, credential("alice"));
    await assertRejects(() => connect(url, credential("alice")), /holds 1 connections already/);
    // The operator is told too: it is a refusal like any other.
    assertMatch(
      logs.join("\n"),
      /warning: connection \d+ from .* \(node alice\): refused: node alice holds 1 connections already \(--max-connections\)/,
    );
    first.close();
    // Slowloris: one byte of a HELLO, then nothing.
    const slow = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await slow.write(Uint8Array.of(V2Type.Hello));
    const buffer = new Uint8Array(16);
    assertEquals(await slow.read(buffer).catch(() => null), null);
    slow.close();
    assert(logs.some((l) => /no handshake in time/.test(l)));
    // A client of another backup protocol is told so, and so is the operator.
    const other = await rawV2(server.port);
    await other.send(
      encodeHello({ protocol: PROTOCOL_VERSION + 1, node: "alice", nonce: nonce() }),
    );
    assertEquals(decodeError((await other.next())!).code, ErrorCode.Version);
    other.close();
    assertMatch(
      logs.join("\n"),
      /warning: connection \d+ from .*: refused: it speaks backup protocol \d+, and this server \d+/,
    );
  }, { connectionsPerNode: 1, handshakeTimeoutMs: 300 });
});

Deno.test("the plugin backs up over v2 with its credential file, and refuses one others may read", async () => {
  await withServer(async ({ root, url, nodes }) => {
    const dir = await backUpWithPlugin(root, url, nodes, "carol");
    const path = `${dir}/${CREDENTIAL_NAME}`;
    Deno.chmodSync(path, 0o644);
    const refusal = `Cannot start backup: the server credential "${path}" may be read by other ` +
      `users (mode 0644): run chmod 600 "${path}"`;
    assertEquals(assertThrows(() => credentialIn(dir)).message, refusal);
    const startup = await openAtStart(dir);
    assert("error" in startup.backend);
    assertEquals(startup.backend.error, refusal);
    Deno.chmodSync(path, 0o600);
    const reopened = await openAtStart(dir);
    assert(!("error" in reopened.backend));
    reopened.backend.close();
    removeNodeDir(dir);
  });
});

Deno.test("server add-node refuses a traversal name; v1 only with --allow-v1, confined to one backup", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-v2-cli-" });
  try {
    const out = new BufferedOutput();
    assertEquals(await serverCommand(["add-node", root, "../evil"], out), 1);
    assertMatch(out.stderr.join("\n"), /is not a node name/);
    assertEquals([...Deno.readDirSync(root)].length, 0);
    const plain = new BufferedOutput();
    assertEquals(await serverCommand([`file://${root}/one`, "127.0.0.1:0"], plain), 1);
    assertMatch(plain.stderr.join("\n"), /add --allow-v1 to serve it so/);
    const added = new BufferedOutput();
    assertEquals(await serverCommand(["add-node", root, "dave"], added), 0);
    const { key } = JSON.parse(added.text.trim().split("\n").at(-1)!);
    assert(keyFromText(key));
    assertEquals(Deno.statSync(`${root}/nodes/dave/key`).mode! & 0o777, 0o600);
    const listed = new BufferedOutput();
    assertEquals(await serverCommand(["list-nodes", root], listed), 0);
    assertMatch(listed.text, /^dave\t/);
    // A mistyped --v1-node is refused, not served as a new empty backup.
    const typo = new BufferedOutput();
    assertEquals(
      await serverCommand(
        [`file://${root}`, "127.0.0.1:0", "--allow-v1", "--v1-node", "dvae", "--allow-plain"],
        typo,
      ),
      1,
    );
    assertEquals(typo.stderr, [
      `Cannot serve backup: --v1-node dvae names no node of this server root: check the name ` +
      `against "server list-nodes ${root}", or add the node first with ` +
      `"server add-node ${root} dvae"`,
    ]);
    assertEquals(Deno.readDirSync(`${root}/nodes`).toArray().map((e) => e.name), ["dave"]);
    // v1 reaches node dave's backup only, and the server warns at start.
    const logs = new BufferedOutput();
    let running: BackupServer | undefined;
    let stop = () => {};
    const serving = serverCommand(
      [`file://${root}`, "127.0.0.1:0", "--allow-v1", "--v1-node", "dave", "--allow-plain"],
      logs,
      (s, stopping) => {
        running = s;
        stop = stopping;
      },
    );
    while (!running) await new Promise((r) => setTimeout(r, 10));
    assertMatch(logs.text, /warning: wire v1 is allowed/);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: running.port });
    await conn.write(encodePacket(PacketType.ReqMetadata));
    const reply = await new PacketReader(conn).next();
    assertEquals(reply?.type, PacketType.Metadata);
    conn.close();
    // Dave over v2 shares that backup: a change over v2 shows in v1's METADATA.
    const dave = await connect(`socket:127.0.0.1:${running.port}`, {
      node: "dave",
      key: keyFromText(key)!,
      path: "-",
    });
    await dave.append({ version: 1, statements: ["CREATE TABLE t (a)"] });
    dave.close();
    const v1conn = await Deno.connect({ hostname: "127.0.0.1", port: running.port });
    await v1conn.write(encodePacket(PacketType.ReqMetadata));
    const metadata = await new PacketReader(v1conn).next();
    assertEquals(decodeMetadata(metadata!).version, 1);
    v1conn.close();
    stop();
    assertEquals(await serving, 0);
    assert(Deno.statSync(`${root}/nodes/dave/backup`).isDirectory);
    const removed = new BufferedOutput();
    assertEquals(await serverCommand(["remove-node", root, "dave"], removed), 0);
    const after = new BufferedOutput();
    await serverCommand(["list-nodes", root], after);
    // Its key gone, its backup kept: listed as such.
    assertMatch(
      after.text,
      /^dave\t.*\/nodes\/dave\/backup\tno key \(removed, or never added\): its backup is kept/,
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("server --v1-node: a node's backup an older server made without add-node is served", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-v2-cli-" });
  try {
    assertEquals(await serverCommand(["add-node", root, "dave"], new BufferedOutput()), 0);
    // An older server made node bob's backup on its first --v1-node bob, and the Python
    // plugin wrote to it; bob never had a key.
    createFileBackup(`${root}/nodes/bob/backup`);
    const logs = new BufferedOutput();
    let running: BackupServer | undefined;
    let stop = () => {};
    const serving = serverCommand(
      [`file://${root}`, "127.0.0.1:0", "--allow-v1", "--v1-node", "bob", "--allow-plain"],
      logs,
      (s, stopping) => {
        running = s;
        stop = stopping;
      },
    );
    while (!running && logs.stderr.length === 0) await new Promise((r) => setTimeout(r, 10));
    assertEquals(logs.stderr, []);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: running!.port });
    await conn.write(encodePacket(PacketType.ReqMetadata));
    assertEquals((await new PacketReader(conn).next())?.type, PacketType.Metadata);
    conn.close();
    stop();
    assertEquals(await serving, 0);
    // One backup, not a root of nodes: --v1-node is refused in words.
    const single = new BufferedOutput();
    assertEquals(
      await serverCommand(
        [`file://${root}/nodes/bob/backup`, "127.0.0.1:0", "--allow-v1", "--v1-node", "bob"],
        single,
      ),
      1,
    );
    assertEquals(single.stderr, [
      `Cannot serve backup: --v1-node bob names a node of a server root, and ` +
      `"${root}/nodes/bob/backup" is one backup: serve it with --allow-v1 alone`,
    ]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("a node with a credential, on a server of one v1 backup, stops with why", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-v2-on-v1-" });
  const v1 = startServer(`${root}/backup`);
  try {
    const credential = { node: "alice", key: new Uint8Array(32), path: "-" };
    await assertRejects(
      () => connect(v1.url, credential),
      /serves one backup over wire v1 only: remove the node's backup.credential/,
    );
    assert(v1.logs.some((l) => /speaks wire v2, which this server does not serve/.test(l)));
  } finally {
    await v1.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("a v2 server logs each change it stored at debug, as --log-level debug promises", async () => {
  await withServer(async ({ url, credential, logs }) => {
    const alice = await connect(url, credential("alice"));
    for (const version of [1, 2]) {
      await alice.append({ version, statements: [bumpStatement(version - 1)] });
    }
    alice.close();
    const stored = logs.filter((l) => /^debug: .*\(node alice\): stored version \d+$/.test(l));
    assertEquals(stored.map((l) => Number(l.split(" ").at(-1))), [1, 2], logs.join("\n"));
  });
});

Deno.test("a backup holding a base alone says it cannot rewind: WELCOME and METADATA give its version as the one before", async () => {
  await withServer(async ({ url, credential, root }) => {
    const database = `${root}/base.sqlite3`;
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(database);
    db.exec(
      "CREATE TABLE vars (name TEXT, intval INTEGER); INSERT INTO vars VALUES ('data_version', 36)",
    );
    db.close();
    const alice = await connect(url, credential("alice"));
    await alice.storeSnapshot(36, Deno.readFileSync(database));
    alice.close();
    // Not 0: a copy made from a snapshot took that for a change it could drop back to 0.
    const conn = await WireConnection.open(socketUrl(url), 5_000, credential("alice"));
    try {
      assertEquals(conn.welcome, { version: 36, prevVersion: 36, records: 1 });
      const reply = await conn.request(encodeFrame(V2Type.ReqMetadata));
      assertEquals(decodeMetadataV2(reply), { version: 36, prevVersion: 36, records: 1 });
      await conn.send(encodeChangeV2(37, [bumpStatement(36)], 1 << 20));
      await conn.receive();
      const after = await conn.request(encodeFrame(V2Type.ReqMetadata));
      assertEquals(decodeMetadataV2(after), { version: 37, prevVersion: 36, records: 2 });
    } finally {
      conn.close();
    }
  });
});
