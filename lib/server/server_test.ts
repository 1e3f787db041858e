import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { RawClient, startServer } from "../../tests/support/wire_server.ts";
import {
  changeVersion,
  decodeMetadata,
  decodeSnapshot,
  decodeVersion,
  encodeChange,
  encodePacket,
  encodeSnapshot,
  encodeVersionPacket,
  PacketType,
} from "../wire/packets.ts";
import { DatabaseSync } from "node:sqlite";
import { concat } from "../bytes/concat.ts";
import { ServerStorage } from "./storage.ts";
import { FIXTURES } from "../../tests/support/fixtures.ts";
import { bumpStatement, cjkText } from "../../tests/support/statements.ts";
import { readLayout } from "../format/layout.ts";
import { writeFully } from "../wire/conn_io.ts";
import { PacketReader } from "../wire/packet_reader.ts";

const REQ_METADATA = Uint8Array.of(4, 0, 0, 0, 0);

function change(version: number): Uint8Array {
  return encodeChange(version, [bumpStatement(version - 1)]);
}

async function withServer(
  body: (s: ReturnType<typeof startServer>, dir: string) => Promise<void>,
  options: Parameters<typeof startServer>[2] = {},
) {
  const tmp = Deno.makeTempDirSync({ prefix: "server-test-" });
  const server = startServer(`${tmp}/backup`, 0, options);
  try {
    await body(server, `${tmp}/backup`);
  } finally {
    await server.server.close();
    Deno.removeSync(tmp, { recursive: true });
  }
}

Deno.test("a missing storage directory is created empty; METADATA is (1, 0, 0, 0)", async () => {
  await withServer(async ({ server, logs }) => {
    const client = await RawClient.connect(server.port);
    await client.send(REQ_METADATA);
    const packet = (await client.next())!;
    assertEquals(decodeMetadata(packet), {
      protocol: 1,
      version: 0,
      prevVersion: 0,
      versionCount: 0,
    });
    client.close();
    assertMatch(logs.join("\n"), /created the empty backup/);
  });
});

Deno.test("a second writer is refused with NACK and a log line; readers are served meanwhile", async () => {
  await withServer(async ({ server, logs }) => {
    const writer = await RawClient.connect(server.port);
    await writer.send(change(1));
    assertEquals(decodeVersion((await writer.next())!), 1);
    const other = await RawClient.connect(server.port);
    await other.send(change(2));
    const refused = (await other.next())!;
    assertEquals([refused.type, decodeVersion(refused)], [PacketType.Nack, 1]);
    assertMatch(
      logs.join("\n"),
      /connection 2 .*refused version 2: connection 1 .* is writing to this backup, and a backup has one writer: stop the other node writing to it; if it is this node's own connection, left open when its network dropped, restart the server \(SIGTERM is clean\), then the node/,
    );
    // The reader sees the writer's change, and the writer goes on.
    await other.send(REQ_METADATA);
    assertEquals(decodeMetadata((await other.next())!).version, 1);
    await writer.send(change(2));
    assertEquals(decodeVersion((await writer.next())!), 2);
    // Once the writer is gone, another connection may write.
    writer.close();
    while (!logs.some((l) => /connection 1 .*: disconnected/.test(l))) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await other.send(change(3));
    const after = (await other.next())!;
    assertEquals([after.type, decodeVersion(after)], [PacketType.Ack, 3]);
    other.close();
  });
});

Deno.test("a change that does not follow the backup is answered NACK and not stored", async () => {
  await withServer(async ({ server, logs }) => {
    const client = await RawClient.connect(server.port);
    await client.send(change(5));
    const nack = (await client.next())!;
    assertEquals([nack.type, decodeVersion(nack)], [PacketType.Nack, 0]);
    assertMatch(logs.join("\n"), /change 5 does not follow the backup's version 0/);
    await client.send(REQ_METADATA);
    assertEquals(decodeMetadata((await client.next())!).versionCount, 0);
    client.close();
  });
});

Deno.test("a snapshot into a backup that is not empty is refused", async () => {
  await withServer(async ({ server }) => {
    const client = await RawClient.connect(server.port);
    await client.send(change(1));
    await client.next();
    await client.send(encodeSnapshot(7, new Uint8Array(10)));
    const nack = (await client.next())!;
    assertEquals([nack.type, decodeVersion(nack)], [PacketType.Nack, 1]);
    client.close();
  });
});

/** The names of the temporary files in the backup at `dir`. */
function leftovers(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((name) => name.endsWith(".tmp"));
}

/** A SQLite database of about 400 kB that deflates to a few kB. */
function compressibleDatabase(dir: string): Uint8Array {
  const path = `${dir}/node.sqlite3`;
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE vars (name TEXT, blobval BLOB)");
  const insert = db.prepare("INSERT INTO vars VALUES (?, ?)");
  for (let i = 0; i < 100; i++) insert.run(`var${i}`, "lightning ".repeat(400));
  db.close();
  const bytes = Deno.readFileSync(path);
  Deno.removeSync(path);
  return bytes;
}

Deno.test("a v1 SNAPSHOT is inflated from disk: a database past the packet limit is stored", async () => {
  await withServer(async ({ server }, dir) => {
    const database = compressibleDatabase(dir);
    const packet = encodeSnapshot(3, database);
    assert(packet.length < 64 * 1024 && database.length > 64 * 1024, `${packet.length}`);
    const client = await RawClient.connect(server.port);
    // In pieces, as a slow link brings them.
    for (let at = 0; at < packet.length; at += 1000) {
      await client.send(packet.subarray(at, at + 1000));
      await new Promise((r) => setTimeout(r, 1));
    }
    const ack = (await client.next())!;
    assertEquals([ack.type, decodeVersion(ack)], [PacketType.Ack, 3]);
    await client.send(REQ_METADATA);
    assertEquals(decodeMetadata((await client.next())!).version, 3);
    await client.send(Uint8Array.of(PacketType.Restore, 0, 0, 0, 0));
    const restored = (await client.next())!;
    assertEquals(decodeSnapshot(restored, 1 << 30), { version: 3, database });
    assertEquals((await client.next())!.type, PacketType.Done);
    client.close();
    assertEquals(leftovers(dir), []);
  }, { maxPayloadBytes: 64 * 1024 });
});

Deno.test("while a large SNAPSHOT is inflated and made a base, other connections are answered", async () => {
  await withServer(async ({ server, logs }, dir) => {
    const path = `${dir}/node.sqlite3`;
    const db = new DatabaseSync(path);
    db.exec("CREATE TABLE pad (b BLOB)");
    const insert = db.prepare("INSERT INTO pad VALUES (?)");
    // 48 MB that deflates to about a quarter: parts of work for the server, not of sending.
    const row = new Uint8Array(4000);
    db.exec("BEGIN");
    for (let i = 0; i < 12_000; i++) {
      insert.run(crypto.getRandomValues(row.subarray(0, 1000)) && row);
    }
    db.exec("COMMIT");
    db.close();
    const writer = await RawClient.connect(server.port);
    const reader = await RawClient.connect(server.port);
    // The reader's connection is served before the snapshot comes: what is timed below is
    // only its packets' turns, not the server taking it on.
    await reader.send(REQ_METADATA);
    assertEquals(decodeMetadata((await reader.next())!).version, 0);
    await writer.send(encodeSnapshot(3, Deno.readFileSync(path), 1));
    Deno.removeSync(path);
    let acked = false;
    const ack = writer.next().then((packet) => (acked = true, packet));
    // Once the server holds the whole packet (it logs it), it inflates it and makes the base
    // in parts; the requests sent after that and answered at version 0 (the base not in place
    // yet) are counted. Not "before the ACK came": this process serves and reads both
    // connections, and may take the ACK before an answer the server sent ahead of it.
    const building = () => logs.some((l) => /SNAPSHOT 3 \(\d+ bytes deflated\)/.test(l));
    let answered = 0;
    const seen: string[] = [];
    while (!acked) {
      const sentDuring = building();
      await reader.send(REQ_METADATA);
      const metadata = decodeMetadata((await reader.next())!);
      if (sentDuring && metadata.version === 0) answered++;
      seen.push(`${sentDuring ? "b" : "-"}${metadata.version}`);
      assert([0, 3].includes(metadata.version), `${metadata.version}`);
    }
    assertEquals(decodeVersion((await ack)!), 3);
    // Without a pause between the parts, or with one that does not poll for I/O: none.
    assert(answered >= 1, `${answered} answers while the base was made (${seen.join(" ")})`);
    writer.close();
    reader.close();
  });
});

Deno.test("a client that leaves part way through a v1 SNAPSHOT leaves nothing behind", async () => {
  await withServer(async ({ server, logs }, dir) => {
    const client = await RawClient.connect(server.port);
    const packet = encodeSnapshot(3, compressibleDatabase(dir), 0);
    await client.send(packet.subarray(0, packet.length >> 1));
    client.close();
    while (!logs.some((l) => /connection 1 .*: lost: stream ended inside a SNAPSHOT/.test(l))) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assertEquals(leftovers(dir), []);
    const again = await RawClient.connect(server.port);
    await again.send(REQ_METADATA);
    assertEquals(decodeMetadata((await again.next())!).version, 0);
    again.close();
  });
});

Deno.test("v1 writes keep to --quota-bytes: a change or a snapshot past it is answered NACK", async () => {
  await withServer(async ({ server, logs }, dir) => {
    // 400 kB of database in a few kB of packet: the quota is checked as it inflates.
    const client = await RawClient.connect(server.port);
    await client.send(encodeSnapshot(3, compressibleDatabase(dir)));
    const refused = (await client.next())!;
    assertEquals([refused.type, decodeVersion(refused)], [PacketType.Nack, 0]);
    assertMatch(logs.join("\n"), /refused version 3: the backup would pass its quota of 100000/);
    assertEquals(leftovers(dir), []);
    // Changes go in until the next would pass it: refused before it is written.
    let version = 0;
    let full = false;
    while (!full && version < 5_000) {
      await client.send(
        encodeChange(version + 1, [`${bumpStatement(version)} -- ${"x".repeat(4000)}`]),
      );
      const reply = (await client.next())!;
      full = reply.type === PacketType.Nack;
      if (full) assertEquals(decodeVersion(reply), version);
      else version = decodeVersion(reply);
    }
    assert(full && version > 10, `${version} changes stored, refused: ${full}`);
    const held = server.v1Storage!.state().bytes;
    assert(held <= 100_000, `${held} bytes held`);
    await client.send(REQ_METADATA);
    assertEquals(decodeMetadata((await client.next())!).version, version);
    client.close();
  }, { quotaBytes: 100_000 });
});

Deno.test("v1: the quota counts a change's stored bytes, not its characters", async () => {
  const quota = 8192;
  await withServer(async ({ server }) => {
    const client = await RawClient.connect(server.port);
    // Changes under 512 bytes are stored raw, with a record header each.
    let version = 0;
    for (;;) {
      await client.send(
        encodeChange(version + 1, [`${bumpStatement(version)} -- ${cjkText(version)}`]),
      );
      const reply = (await client.next())!;
      if (reply.type === PacketType.Nack) break;
      version = decodeVersion(reply);
    }
    assert(version > 10, `refused after ${version} changes`);
    const held = server.v1Storage!.state().bytes;
    assert(held <= quota, `${held} bytes held under a quota of ${quota}`);
    client.close();
  }, { quotaBytes: quota });
});

Deno.test("a rewind goes in over the quota: it adds nothing", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "server-test-" });
  try {
    const first = startServer(`${tmp}/backup`);
    const writer = await RawClient.connect(first.server.port);
    for (const version of [1, 2]) {
      await writer.send(change(version));
      assertEquals((await writer.next())!.type, PacketType.Ack);
    }
    writer.close();
    await first.server.close();
    // The same backup under a quota it is past already.
    const second = startServer(`${tmp}/backup`, 0, { quotaBytes: 1 });
    try {
      const client = await RawClient.connect(second.server.port);
      await client.send(change(3));
      assertEquals((await client.next())!.type, PacketType.Nack);
      await client.send(encodeVersionPacket(PacketType.Rewind, 1));
      const ack = (await client.next())!;
      assertEquals([ack.type, decodeVersion(ack)], [PacketType.Ack, 1]);
      client.close();
    } finally {
      await second.server.close();
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("a v1 SNAPSHOT that does not inflate ends the connection; the backup stays empty", async () => {
  await withServer(async ({ server, logs }, dir) => {
    const client = await RawClient.connect(server.port);
    const garbage = Uint8Array.from({ length: 5000 }, (_, i) => (i * 131) % 251);
    await client.send(
      encodePacket(PacketType.Snapshot, concat([Uint8Array.of(0, 0, 0, 3), garbage])),
    );
    assertEquals(await client.next(), null);
    assertMatch(logs.join("\n"), /protocol error: SNAPSHOT 3 does not decompress/);
    const again = await RawClient.connect(server.port);
    await again.send(REQ_METADATA);
    assertEquals(decodeMetadata((await again.next())!).version, 0);
    again.close();
    assertEquals(leftovers(dir), []);
  });
});

Deno.test("a v1 SNAPSHOT the server cannot write is read to its end, answered NACK, and the connection goes on", async () => {
  await withServer(async ({ server, logs }, dir) => {
    // The first connection's upload file cannot be created.
    Deno.mkdirSync(`${dir}/upload-1.tmp`);
    const client = await RawClient.connect(server.port);
    await client.send(encodeSnapshot(3, compressibleDatabase(dir)));
    const nack = (await client.next())!;
    assertEquals([nack.type, decodeVersion(nack)], [PacketType.Nack, 0]);
    assertMatch(logs.join("\n"), /refused version 3: cannot store it: .*exists/i);
    await client.send(REQ_METADATA);
    assertEquals(decodeMetadata((await client.next())!).version, 0);
    client.close();
  });
});

Deno.test("a v1 RESTORE whose spool cannot be made holds the snapshot in memory instead", async () => {
  await withServer(async ({ server }, dir) => {
    const database = compressibleDatabase(dir);
    const client = await RawClient.connect(server.port);
    await client.send(encodeSnapshot(3, database));
    assertEquals((await client.next())!.type, PacketType.Ack);
    // The first connection's restore spool cannot be created.
    Deno.mkdirSync(`${dir}/restore-1.tmp`);
    await client.send(Uint8Array.of(PacketType.Restore, 0, 0, 0, 0));
    assertEquals(decodeSnapshot((await client.next())!, 1 << 30), { version: 3, database });
    assertEquals((await client.next())!.type, PacketType.Done);
    client.close();
    // What was in the way is not the restore's to remove.
    assert(Deno.statSync(`${dir}/restore-1.tmp`).isDirectory);
  });
});

Deno.test("a v1 RESTORE of a damaged base closes the connection and says why", async () => {
  await withServer(async ({ server, logs }, dir) => {
    const client = await RawClient.connect(server.port);
    await client.send(encodeSnapshot(3, compressibleDatabase(dir)));
    assertEquals((await client.next())!.type, PacketType.Ack);
    const base = readLayout(dir).bases[0].path;
    const bytes = Deno.readFileSync(base);
    bytes[bytes.length >> 1] ^= 0xff;
    Deno.writeFileSync(base, bytes);
    await client.send(Uint8Array.of(PacketType.Restore, 0, 0, 0, 0));
    assertEquals(await client.next(), null);
    assertMatch(logs.join("\n"), /connection 1 .*: RESTORE failed: .*; closing the connection/);
    assertEquals(leftovers(dir), []);
  });
});

Deno.test("a v1 .dbak is refused as storage, naming upgrade", () => {
  const path = `${FIXTURES}upstream/pre-4090-backup.dbak`;
  let error: Error | undefined;
  try {
    ServerStorage.open(`file://${path}`, path, () => {});
  } catch (e) {
    error = e as Error;
  }
  assert(error);
  assertMatch(
    error.message,
    /is a v1 \.dbak of the Python plugin, .*: with the Python server stopped, convert it once with "cln-backup upgrade 'file:\/\/.*\.dbak'", then serve the directory it makes/,
  );
});

Deno.test("a restore while the writer writes: exactly the versions it was told, then DONE", async () => {
  await withServer(async ({ server }) => {
    const writer = await RawClient.connect(server.port);
    let acked = 0;
    let stop = false;
    const writing = (async () => {
      for (let version = 1; !stop; version++) {
        await writer.send(change(version));
        const reply = (await writer.next())!;
        assertEquals(reply.type, PacketType.Ack);
        acked = decodeVersion(reply);
      }
    })();
    while (acked < 20) await new Promise((r) => setTimeout(r, 1));
    const reader = await RawClient.connect(server.port);
    await reader.send(REQ_METADATA);
    const told = decodeMetadata((await reader.next())!).version;
    await reader.send(Uint8Array.of(PacketType.Restore, 0, 0, 0, 0));
    const versions: number[] = [];
    for (let p = await reader.next(); p && p.type !== PacketType.Done; p = await reader.next()) {
      versions.push(new DataView(p.payload.buffer, p.payload.byteOffset).getUint32(0));
    }
    stop = true;
    await writing;
    assertEquals(versions, Array.from({ length: told }, (_, i) => i + 1));
    reader.close();
    writer.close();
  });
});

/** The files under `dir` this process holds open. */
function openFilesUnder(dir: string): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].flatMap(({ name }) => {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${name}`);
      return target.startsWith(`${dir}/`) ? [target] : [];
    } catch {
      return []; // Closed since it was listed (the listing's own).
    }
  });
}

Deno.test("a v1 RESTORE told a version older than the newest leaves no backup file open", async () => {
  await withServer(async ({ server }, dir) => {
    const writer = await RawClient.connect(server.port);
    await writer.send(change(1));
    assertEquals((await writer.next())!.type, PacketType.Ack);
    const held = openFilesUnder(dir);
    const reader = await RawClient.connect(server.port);
    await reader.send(REQ_METADATA);
    assertEquals(decodeMetadata((await reader.next())!).version, 1);
    await writer.send(change(2));
    assertEquals((await writer.next())!.type, PacketType.Ack);
    // Each restore stops at version 1, before the end of the log: a server that kept the log
    // open for each would run out of file descriptors.
    for (let i = 0; i < 3; i++) {
      await reader.send(Uint8Array.of(PacketType.Restore, 0, 0, 0, 0));
      assertEquals((await reader.next())!.type, PacketType.Change);
      assertEquals((await reader.next())!.type, PacketType.Done);
    }
    assertEquals(openFilesUnder(dir), held);
    reader.close();
    writer.close();
  });
});

/** Reads exactly `n` bytes of `conn`; fewer only when it ends first. */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(n);
  for (let at = 0; at < n;) {
    const read = await conn.read(bytes.subarray(at));
    if (read === null) return bytes.subarray(0, at);
    at += read;
  }
  return bytes;
}

/**
 * A writer that sent a base of 24 MB that does not compress (far larger than a socket's
 * buffers, and a compaction that takes a while), then changes 2 to 10.
 */
async function writerOfLargeBase(port: number, dir: string): Promise<RawClient> {
  const path = `${dir}/node.sqlite3`;
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE vars (name TEXT, intval INTEGER)");
  db.exec("INSERT INTO vars VALUES ('data_version', 1)");
  db.exec("CREATE TABLE pad (b BLOB)");
  const insert = db.prepare("INSERT INTO pad VALUES (?)");
  for (let i = 0; i < 6000; i++) insert.run(crypto.getRandomValues(new Uint8Array(4000)));
  db.close();
  const database = Deno.readFileSync(path);
  Deno.removeSync(path);
  const writer = await RawClient.connect(port);
  await writer.send(encodeSnapshot(1, database, 1));
  assertEquals((await writer.next())!.type, PacketType.Ack);
  for (let version = 2; version <= 10; version++) {
    await writer.send(change(version));
    assertEquals((await writer.next())!.type, PacketType.Ack);
  }
  return writer;
}

Deno.test("a v1 RESTORE that a COMPACT overtakes goes on with the files it started with", async () => {
  await withServer(async ({ server, logs }, dir) => {
    // The restore waits in the middle of sending the base while the reader does not read.
    const writer = await writerOfLargeBase(server.port, dir);
    const reader = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await writeFully(reader, REQ_METADATA);
    assertEquals((await readExactly(reader, 25))[0], PacketType.Metadata);
    await writeFully(reader, Uint8Array.of(PacketType.Restore, 0, 0, 0, 0));
    // The SNAPSHOT's header: the restore has read the base and sends it.
    const header = await readExactly(reader, 5);
    assertEquals(header[0], PacketType.Snapshot);
    // The compaction makes a base at version 9, deletes the old one and rewrites the live
    // log from version 9 on, the restore still in the middle of the old base.
    await writer.send(encodePacket(PacketType.Compact));
    assertEquals((await writer.next())!.type, PacketType.CompactRes);
    const length = new DataView(header.buffer).getUint32(1);
    assertEquals((await readExactly(reader, length)).length, length);
    const packets = new PacketReader(reader);
    const versions: number[] = [];
    for (let p = await packets.next(); p?.type === PacketType.Change; p = await packets.next()) {
      versions.push(changeVersion(p));
    }
    assertEquals(versions, [2, 3, 4, 5, 6, 7, 8, 9, 10], logs.join("\n"));
    reader.close();
    writer.close();
  });
});

Deno.test("a v1 writer that leaves while its COMPACT runs lets its restarted node write at once", async () => {
  await withServer(async ({ server, logs }, dir) => {
    // The Python plugin sends COMPACT on its writer connection; its node, whose hooks wait,
    // is restarted meanwhile.
    const writer = await writerOfLargeBase(server.port, dir);
    await writer.send(encodePacket(PacketType.Compact));
    writer.close();
    const left = /connection 1 from .*: disconnected/;
    while (!logs.some((line) => left.test(line))) await new Promise((r) => setTimeout(r, 10));
    // Let go as it left, not once the compaction ended.
    assert(!logs.some((line) => /compacted in/.test(line)), logs.join("\n"));
    const restarted = await RawClient.connect(server.port);
    await restarted.send(change(11));
    const answer = (await restarted.next())!;
    assertEquals([answer.type, decodeVersion(answer)], [PacketType.Ack, 11]);
    restarted.close();
  });
});

/** Appends bytes that fail their checks (less than a record header) to the live log. */
function tearLiveLog(dir: string): void {
  const live = readLayout(dir).logs.at(-1)!.path;
  const file = Deno.openSync(live, { append: true });
  file.writeSync(new Uint8Array(7).fill(1));
  file.close();
}

Deno.test("a torn tail on the server is decided by the first write, as the plugin's check does", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "server-test-" });
  const dir = `${tmp}/backup`;
  try {
    for (const [next, acked] of [[3, true], [2, true], [4, false]] as const) {
      Deno.removeSync(tmp, { recursive: true });
      let first = startServer(dir);
      let client = await RawClient.connect(first.server.port);
      for (const version of [1, 2]) {
        await client.send(change(version));
        assertEquals(decodeVersion((await client.next())!), version);
      }
      client.close();
      await first.server.close();
      tearLiveLog(dir);
      first = startServer(dir);
      assertMatch(first.logs.join("\n"), /7 bytes at offset \d+ of .* the first write decides/);
      client = await RawClient.connect(first.server.port);
      await client.send(change(next));
      const answer = (await client.next())!;
      const what = `change ${next} after a tail at version 2`;
      if (acked) {
        // The node is at 2: the tail was an append never acknowledged.
        assertEquals([answer.type, decodeVersion(answer)], [PacketType.Ack, next], what);
        assertMatch(first.logs.join("\n"), /cut 7 torn bytes/, what);
      } else {
        // The node is at 3: it committed change 3, which the tail held, damaged.
        assertEquals([answer.type, decodeVersion(answer)], [PacketType.Nack, 2], what);
        assertMatch(first.logs.join("\n"), /change 3 is damaged \(7 bytes at offset/, what);
      }
      client.close();
      await first.server.close();
      const reopened = ServerStorage.open(`file://${dir}`, dir, () => {});
      assertEquals(reopened.state().tail === undefined, acked, what);
      assertEquals(reopened.state().version, acked ? next : 2, what);
      reopened.close();
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
