import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { decodeSnapshot, FAST_LEVEL, HEADER_BYTES, PacketType } from "./packets.ts";
import { type SnapshotStream, snapshotStream } from "./snapshot_stream.ts";

/** A database's bytes of SQLite's shape: pages of rows, some random, some repeated. */
function database(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 4096) {
    const page = out.subarray(at, at + 4096);
    crypto.getRandomValues(page.subarray(0, 512));
    page.fill(at / 4096 & 0xff, 512);
  }
  return out;
}

/** Runs `body` with a spool path in a new directory, checking that the spool is gone after. */
async function withSpool(body: (spool: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "snapshot-stream-" });
  try {
    await body(`${dir}/restore-1.tmp`);
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** What `stream` sends, each buffer copied as it comes (the stream reuses its buffers). */
async function sent(stream: SnapshotStream): Promise<Uint8Array[]> {
  const buffers: Uint8Array[] = [];
  await stream.send((bytes) => {
    buffers.push(bytes.slice());
    return Promise.resolve();
  });
  stream.close();
  return buffers;
}

/** The packet's buffers joined, checked as a reader frames and decodes a SNAPSHOT. */
function unpack(buffers: Uint8Array[]): { version: number; database: Uint8Array } {
  const packet = joined(buffers);
  const view = new DataView(packet.buffer);
  assertEquals(view.getUint8(0), PacketType.Snapshot);
  assertEquals(view.getUint32(1), packet.length - HEADER_BYTES);
  const payload = packet.subarray(HEADER_BYTES);
  return decodeSnapshot({ type: PacketType.Snapshot, payload }, 1 << 30);
}

const joined = (buffers: Uint8Array[]) => {
  const out = new Uint8Array(buffers.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of buffers) at += (out.set(b, at), b.length);
  return out;
};

Deno.test("snapshotStream: parts compressed as they come make one SNAPSHOT packet", async () => {
  const db = database(2.5 * 2 ** 20);
  for (
    const parts of [[db], [
      db.subarray(0, 2 ** 20),
      db.subarray(2 ** 20, 2 ** 21),
      db.subarray(2 ** 21),
    ]]
  ) {
    await withSpool(async (spool) => {
      const stream = snapshotStream(479, FAST_LEVEL, spool);
      for (const part of parts) await stream.add(part);
      assertEquals(unpack(await sent(stream)), { version: 479, database: db });
    });
  }
});

Deno.test("snapshotStream: a part's buffer may be reused once its add resolves", async () => {
  // As a backup reader hands out its parts: one buffer, overwritten by the next part.
  const db = database(3 * 2 ** 20);
  const buffer = new Uint8Array(2 ** 20);
  await withSpool(async (spool) => {
    const stream = snapshotStream(7, FAST_LEVEL, spool);
    for (let at = 0; at < db.length; at += buffer.length) {
      buffer.set(db.subarray(at, at + buffer.length));
      await stream.add(buffer);
      buffer.fill(0xee);
    }
    assertEquals(unpack(await sent(stream)), { version: 7, database: db });
  });
});

Deno.test("snapshotStream: an empty database is a packet too", async () => {
  await withSpool(async (spool) => {
    const stream = snapshotStream(0, FAST_LEVEL, spool);
    assertEquals(unpack(await sent(stream)), { version: 0, database: new Uint8Array() });
  });
});

Deno.test("snapshotStream: a stream closed part way raises no error, now or later", async () => {
  await withSpool(async (spool) => {
    const stream = snapshotStream(3, FAST_LEVEL, spool);
    await stream.add(database(2 ** 20));
    stream.close();
    // The test's sanitizers fail it if the compression were left running or rejected unseen.
    await new Promise((resolve) => setTimeout(resolve, 50));
  });
});

Deno.test("snapshotStream: a send that fails part way leaves the spool for close to remove", async () => {
  await withSpool(async (spool) => {
    const stream = snapshotStream(3, FAST_LEVEL, spool);
    await stream.add(database(3 * 2 ** 20));
    let sends = 0;
    await assertRejects(
      () =>
        stream.send(() => {
          if (++sends === 2) throw new Deno.errors.BrokenPipe("the client left");
          return Promise.resolve();
        }),
      /the client left/,
    );
    stream.close();
  });
});
