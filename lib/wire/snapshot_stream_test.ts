import { assertEquals } from "../../tests/support/assert.ts";
import { decodeSnapshot, FAST_LEVEL, HEADER_BYTES, PacketType } from "./packets.ts";
import { snapshotStream } from "./snapshot_stream.ts";

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
    const stream = snapshotStream(479, FAST_LEVEL);
    for (const part of parts) await stream.add(part);
    assertEquals(unpack(await stream.end()), { version: 479, database: db });
  }
});

Deno.test("snapshotStream: a part's buffer may be reused once its add resolves", async () => {
  // As a backup reader hands out its parts: one buffer, overwritten by the next part.
  const db = database(3 * 2 ** 20);
  const buffer = new Uint8Array(2 ** 20);
  const stream = snapshotStream(7, FAST_LEVEL);
  for (let at = 0; at < db.length; at += buffer.length) {
    buffer.set(db.subarray(at, at + buffer.length));
    await stream.add(buffer);
    buffer.fill(0xee);
  }
  assertEquals(unpack(await stream.end()), { version: 7, database: db });
});

Deno.test("snapshotStream: an empty database is a packet too", async () => {
  const stream = snapshotStream(0, FAST_LEVEL);
  assertEquals(unpack(await stream.end()), { version: 0, database: new Uint8Array() });
});

Deno.test("snapshotStream: a stream cancelled part way raises no error, now or later", async () => {
  const stream = snapshotStream(3, FAST_LEVEL);
  await stream.add(database(2 ** 20));
  stream.cancel();
  // The test's sanitizers fail it if the compression were left running or rejected unseen.
  await new Promise((resolve) => setTimeout(resolve, 50));
});
