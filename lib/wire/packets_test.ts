import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/support/assert.ts";
import { concat } from "../bytes/concat.ts";
import { recordedSession, SESSIONS, splitPackets } from "../../tests/support/wire_fixtures.ts";
import {
  decodeChange,
  decodeCompactResult,
  decodeMetadata,
  decodeSnapshot,
  decodeVersion,
  encodeChange,
  encodeCompactResult,
  encodeMetadata,
  encodePacket,
  encodeSnapshot,
  encodeVersionPacket,
  type Packet,
  PacketType,
} from "./packets.ts";
import { type ByteSource, PacketReader, StreamEndedError } from "./packet_reader.ts";
import { encodeChangeV2, V2_FRAMING } from "./packets_v2.ts";
import { MAX_PAYLOAD_BYTES } from "../format/record.ts";

const MAX = 1 << 30;

/** A source that hands out the given chunks, one per read (split further to fit). */
function chunkSource(chunks: Uint8Array[]): ByteSource {
  const queue = chunks.map((c) => c.slice());
  return {
    read(buffer) {
      const chunk = queue[0];
      if (!chunk) return Promise.resolve(null);
      const n = Math.min(buffer.length, chunk.length);
      buffer.set(chunk.subarray(0, n));
      if (n === chunk.length) queue.shift();
      else queue[0] = chunk.subarray(n);
      return Promise.resolve(n);
    },
  };
}

async function readAll(source: ByteSource): Promise<Packet[]> {
  const reader = new PacketReader(source);
  const packets: Packet[] = [];
  for (let p = await reader.next(); p; p = await reader.next()) packets.push(p);
  return packets;
}

/** Re-encodes a decoded packet with our codec. */
function reencode(packet: Packet): Uint8Array {
  switch (packet.type) {
    case PacketType.Change: {
      const { version, statements } = decodeChange(packet, MAX);
      return encodeChange(version, statements);
    }
    case PacketType.Snapshot: {
      const { version, database } = decodeSnapshot(packet, MAX);
      return encodeSnapshot(version, database);
    }
    case PacketType.Ack:
    case PacketType.Nack:
    case PacketType.Rewind:
      return encodeVersionPacket(packet.type, decodeVersion(packet));
    case PacketType.Metadata:
      return encodeMetadata(decodeMetadata(packet));
    case PacketType.CompactRes:
      return encodeCompactResult(decodeCompactResult(packet));
    default:
      return encodePacket(packet.type, packet.payload);
  }
}

Deno.test("every recorded packet decodes, and re-encodes to the same bytes or content", async () => {
  let packets = 0;
  for (const session of SESSIONS) {
    for (const conn of recordedSession(session)) {
      for (const dir of ["c2s", "s2c"] as const) {
        const chunks = conn.chunks.filter((c) => c.dir === dir).map((c) => c.bytes);
        const read = await readAll(chunkSource(chunks));
        const framed = splitPackets(conn[dir]);
        assertEquals(read.length, framed.length, `${session} conn ${conn.conn} ${dir}`);
        for (const [i, packet] of read.entries()) {
          packets++;
          const again = reencode(packet);
          if (packet.type === PacketType.Change || packet.type === PacketType.Snapshot) {
            // zlib output differs between implementations; the content must not.
            const decode = packet.type === PacketType.Change ? decodeChange : decodeSnapshot;
            assertEquals(
              decode({ type: packet.type, payload: again.subarray(5) }, MAX),
              decode(packet, MAX),
            );
          } else {
            assertEquals(again, framed[i].bytes, `${session} ${dir} packet ${i}`);
          }
        }
      }
    }
  }
  assert(packets > 1000, `${packets} packets`);
});

Deno.test("a packet split at every byte reads the same as whole", async () => {
  const [conn] = recordedSession("07-probe");
  const bytes = conn.s2c;
  const oneByOne = await readAll(chunkSource([...bytes].map((b) => Uint8Array.of(b))));
  const whole = await readAll(chunkSource([bytes]));
  assertEquals(oneByOne, whole);
  assertEquals(whole.length, splitPackets(bytes).length);
});

Deno.test("the quirks: empty change, NACK carries a version, METADATA's protocol is 1", async () => {
  const empty = encodeChange(1, []);
  assertEquals(Array.from(empty.subarray(5)), [0, 0, 0, 1, 0x78, 0x9c, 3, 0, 0, 0, 0, 1]);
  assertEquals(decodeChange({ type: 1, payload: empty.subarray(5) }, MAX).statements, [""]);
  assertEquals(encodeVersionPacket(PacketType.Nack, 2), Uint8Array.of(7, 0, 0, 0, 4, 0, 0, 0, 2));
  const metadata = encodeMetadata({ version: 2, prevVersion: 1, versionCount: 2 });
  assertEquals(decodeMetadata({ type: 8, payload: metadata.subarray(5) }).protocol, 1);
  assertEquals(
    new TextDecoder().decode(
      encodeCompactResult({
        before: { backupsize: 1212979, version_count: 484 },
        after: { version_count: 2, backupsize: 787965 },
      }).subarray(5),
    ),
    '{"before": {"backupsize": 1212979, "version_count": 484}, "after": {"version_count": 2, ' +
      '"backupsize": 787965}}',
  );
  // Our server's fields follow Python's; a COMPACT_RES without the sizes is a protocol error.
  const ours = encodeCompactResult({
    before: { backupsize: 10, version_count: 3 },
    after: { version_count: 2, backupsize: 8 },
    base_version: 5,
  });
  assertEquals(
    new TextDecoder().decode(ours.subarray(5)),
    '{"before": {"backupsize": 10, "version_count": 3}, "after": {"version_count": 2, ' +
      '"backupsize": 8}, "base_version": 5}',
  );
  assertEquals(decodeCompactResult({ type: 11, payload: ours.subarray(5) }).base_version, 5);
  await assertRejects(
    () => decodeCompactResult({ type: 11, payload: new TextEncoder().encode('{"before": 1}') }),
    /^COMPACT_RES lacks before and after/,
  );
});

Deno.test("lengths over what a type can hold are refused before any allocation", async () => {
  const huge = Uint8Array.of(PacketType.Change, 0x7f, 0xff, 0xff, 0xff);
  await assertRejects(
    () => new PacketReader(chunkSource([huge]), 1024).next(),
    /CHANGE declares 2147483647 bytes, over its 1024/,
  );
  const longAck = Uint8Array.of(PacketType.Ack, 0, 0, 0, 5, 0, 0, 0, 0, 0);
  await assertRejects(() => new PacketReader(chunkSource([longAck])).next(), /ACK declares 5/);
  const unknown = Uint8Array.of(0x0c, 0, 0, 0, 1, 0);
  await assertRejects(() => new PacketReader(chunkSource([unknown])).next(), /type 0x0c/);
});

Deno.test("a stream that ends mid-packet is an error; at a boundary it is a clean end", async () => {
  const ack = encodeVersionPacket(PacketType.Ack, 9);
  assertEquals(await readAll(chunkSource([ack])), [{ type: 6, payload: ack.subarray(5) }]);
  await assertRejects(() => readAll(chunkSource([ack.subarray(0, 3)])), /inside a packet header/);
  await assertRejects(() => readAll(chunkSource([ack.subarray(0, 7)])), /inside a ACK of 4/);
});

Deno.test("a change that inflates past the limit is refused", () => {
  const big = encodeChange(3, ["x".repeat(10000)]);
  let error: Error | undefined;
  try {
    decodeChange({ type: 1, payload: big.subarray(5) }, 1000);
  } catch (e) {
    error = e as Error;
  }
  assert(error && /CHANGE 3 does not decompress within 1000 bytes/.test(error.message));
});

Deno.test("a large packet's payload stays whole while the packets after it are read", async () => {
  const big = new Uint8Array(1_000_000).map((_, i) => i % 251);
  const snapshot = encodePacket(PacketType.Snapshot, big);
  const acks = [7, 8].map((v) => encodeVersionPacket(PacketType.Ack, v));
  // Alone in the buffer once read, and followed by bytes of the next packet.
  for (
    const chunks of [[snapshot, ...acks], [new Uint8Array([...snapshot, ...acks[0]]), acks[1]]]
  ) {
    const packets = await readAll(chunkSource(chunks));
    assertEquals(packets.map((p) => p.type), [PacketType.Snapshot, PacketType.Ack, PacketType.Ack]);
    assertEquals(packets[0].payload, big);
    assertEquals(packets.slice(1).map(decodeVersion), [7, 8]);
  }
});

/** What {@linkcode PacketReader.nextTo} gave: each packet's type, length and joined pieces. */
async function readAllTo(source: ByteSource, maxPayload?: number): Promise<Packet[]> {
  const reader = new PacketReader(source, maxPayload);
  const packets: Packet[] = [];
  for (;;) {
    let pieces: Uint8Array[] = [];
    let type = -1;
    const got = await reader.nextTo({
      start(t) {
        type = t;
        pieces = [];
      },
      write: (piece) => void pieces.push(piece.slice()),
    });
    if (!got) return packets;
    packets.push({ type, payload: concat(pieces) });
  }
}

Deno.test("nextTo hands a payload over in pieces, from any split of the stream", async () => {
  // Past the reader's 64 KiB buffer in large reads; byte by byte on a smaller one.
  for (const [bytes, sizes] of [[300_000, [4096, 100_000, 400_000]], [3_000, [1, 7]]]) {
    const big = new Uint8Array(bytes as number).map((_, i) => i % 253);
    const stream = new Uint8Array([
      ...encodePacket(PacketType.Snapshot, big),
      ...encodeVersionPacket(PacketType.Ack, 3),
      ...encodePacket(PacketType.Done),
    ]);
    const expected = [
      { type: PacketType.Snapshot, payload: big },
      { type: PacketType.Ack, payload: encodeVersionPacket(PacketType.Ack, 3).subarray(5) },
      { type: PacketType.Done, payload: new Uint8Array(0) },
    ];
    for (const size of sizes as number[]) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < stream.length; at += size) chunks.push(stream.subarray(at, at + size));
      assertEquals(await readAllTo(chunkSource(chunks)), expected);
    }
  }
});

Deno.test("nextTo refuses what next refuses, before taking the payload", async () => {
  const snapshot = encodePacket(PacketType.Snapshot, new Uint8Array(5000));
  await assertRejects(() => readAllTo(chunkSource([snapshot]), 4999), /SNAPSHOT declares 5000/);
  await assertRejects(
    () => readAllTo(chunkSource([snapshot.subarray(0, 3000)])),
    /stream ended inside a SNAPSHOT of 5000 bytes/,
  );
  await assertRejects(() => readAllTo(chunkSource([snapshot.subarray(0, 3)])), /header/);
  const v2 = new PacketReader(chunkSource([snapshot]), MAX, V2_FRAMING);
  await assertRejects(() => v2.nextTo({ start() {}, write() {} }), /without a trailer/);
});

Deno.test("a TLS close without close_notify ends the stream: cleanly between packets, not inside one", async () => {
  const ack = encodeVersionPacket(PacketType.Ack, 7);
  /** The chunks, then the error Deno's TLS read throws for a peer gone without close_notify. */
  const cutTls = (chunks: Uint8Array[]): ByteSource => {
    const source = chunkSource(chunks);
    return {
      async read(buffer) {
        const n = await source.read(buffer);
        if (n === null) throw new Deno.errors.UnexpectedEof("peer closed connection without ...");
        return n;
      },
    };
  };
  assertEquals((await readAll(cutTls([ack]))).length, 1);
  const inside = await assertRejects(() => readAll(cutTls([ack, ack.subarray(0, 6)])));
  assert(inside instanceof StreamEndedError, String(inside));
  assertEquals(inside.message, "stream ended inside a ACK of 4 bytes");
});

Deno.test("a change a record could not hold is refused before it is sent, over v1 and v2", () => {
  const statements = ["a".repeat(MAX_PAYLOAD_BYTES - 1), "b"];
  for (const encode of [encodeChange, encodeChangeV2]) {
    assertThrows(
      () => encode(7, statements),
      /version 7: its statements take 268435457 bytes, over the 268435456 a record can hold/,
    );
  }
});
