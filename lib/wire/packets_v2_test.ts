import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/support/assert.ts";
import { type ByteSource, PacketReader } from "./packet_reader.ts";
import { decodeChange, type Packet, PacketType } from "./packets.ts";
import { deflate } from "./deflate.ts";
import {
  ChecksumError,
  decodeChallenge,
  decodeChangeV2,
  decodeError,
  decodeFile,
  decodeHello,
  decodeJson,
  decodeMetadataV2,
  decodePlace,
  decodeSealedChange,
  decodeSealedInit,
  decodeSealedInitFile,
  decodeSealedKeyIf,
  decodeSealedUpgrade,
  decodeSnapshotFile,
  decodeSnapshotV2,
  decodeVersionFrame,
  decodeWelcome,
  encodeChallenge,
  encodeChangeV2,
  encodeError,
  encodeFile,
  encodeFrame,
  encodeHello,
  encodeJson,
  encodeMetadataV2,
  encodePlace,
  encodeSealedChange,
  encodeSealedInit,
  encodeSealedInitFile,
  encodeSealedKeyIf,
  encodeSealedUpgrade,
  encodeSnapshotFile,
  encodeSnapshotV2,
  encodeVersionFrame,
  encodeWelcome,
  ErrorCode,
  keyDigest,
  PROXIED_RAW_BODY_BYTES,
  RAW_BODY_BYTES,
  V2_FRAMING,
  V2Type,
} from "./packets_v2.ts";

function source(bytes: Uint8Array): ByteSource {
  let at = 0;
  return {
    read(buffer) {
      if (at === bytes.length) return Promise.resolve(null);
      // One byte at a time: the reader must reassemble frames.
      buffer[0] = bytes[at++];
      return Promise.resolve(1);
    },
  };
}

async function readOne(frame: Uint8Array, max = 1 << 20): Promise<Packet> {
  const packet = await new PacketReader(source(frame), max, V2_FRAMING).next();
  assert(packet);
  return packet;
}

const nonce = (fill: number) => new Uint8Array(32).fill(fill);
const PAST_U32 = 2 ** 32 + 7;

Deno.test("v2 packets decode to what was encoded, versions past 2^32 included", async () => {
  const hello = { protocol: 2, node: "alice", nonce: nonce(1) };
  assertEquals(decodeHello(await readOne(encodeHello(hello))), hello);
  assertEquals(decodeChallenge(await readOne(encodeChallenge(nonce(2)))), {
    protocol: 2,
    nonce: nonce(2),
  });
  const metadata = { version: PAST_U32, prevVersion: PAST_U32 - 1, records: 3 };
  assertEquals(decodeWelcome(await readOne(encodeWelcome(nonce(3), metadata))), {
    proof: nonce(3),
    metadata,
  });
  assertEquals(decodeMetadataV2(await readOne(encodeMetadataV2(metadata))), metadata);
  for (const type of [V2Type.Ack, V2Type.Rewind, V2Type.Done] as const) {
    assertEquals(
      decodeVersionFrame(await readOne(encodeVersionFrame(type, PAST_U32)), type),
      PAST_U32,
    );
  }
  const error = { code: ErrorCode.Quota, version: PAST_U32, message: "quota used: free space" };
  assertEquals(decodeError(await readOne(encodeError(error))), error);
  assertEquals(decodeFile(await readOne(encodeFile("log-1.clnb", PAST_U32))), {
    name: "log-1.clnb",
    size: PAST_U32,
  });
  assertEquals(
    decodeJson(await readOne(encodeJson(V2Type.StatusRes, { a: [1] })), V2Type.StatusRes),
    { a: [1] },
  );
});

Deno.test("v2 changes: small ones raw, large ones compressed, none as one empty statement", async () => {
  const small = ["UPDATE vars SET intval=2"];
  const large = [`INSERT INTO t VALUES ('${"x".repeat(RAW_BODY_BYTES * 4)}')`, "DELETE FROM t"];
  for (const statements of [small, large]) {
    const frame = encodeChangeV2(PAST_U32, statements);
    assertEquals(frame[5 + 8], statements === small ? 0 : 1);
    assertEquals(decodeChangeV2(await readOne(frame), 1 << 20), {
      version: PAST_U32,
      statements,
      bytes: new TextEncoder().encode(statements.join("\0")).length,
    });
  }
  // Through a proxy, a body past PROXIED_RAW_BODY_BYTES is compressed.
  const medium = [`INSERT INTO t VALUES ('${"y".repeat(PROXIED_RAW_BODY_BYTES * 2)}')`];
  assertEquals(encodeChangeV2(5, medium)[5 + 8], 0);
  const proxied = encodeChangeV2(5, medium, PROXIED_RAW_BODY_BYTES);
  assertEquals(proxied[5 + 8], 1);
  assertEquals(decodeChangeV2(await readOne(proxied), 1 << 20).statements, medium);
  assertEquals(decodeChangeV2(await readOne(encodeChangeV2(4, [])), 1 << 20).statements, [""]);
  const database = new Uint8Array(RAW_BODY_BYTES * 4).fill(7);
  assertEquals(decodeSnapshotV2(await readOne(encodeSnapshotV2(9, database)), 1 << 20), {
    version: 9,
    database,
  });
});

Deno.test("v2 frames: any flipped bit fails the checksum", async () => {
  const frame = encodeChangeV2(5, ["UPDATE vars SET intval=5"]);
  for (let bit = 5 * 8; bit < frame.length * 8; bit += 7) {
    const bad = frame.slice();
    bad[bit >> 3] ^= 1 << (bit & 7);
    const error = await assertRejects(() => readOne(bad));
    assert(error instanceof ChecksumError, `bit ${bit}: ${error.message}`);
  }
});

Deno.test("v2 refuses oversized lengths, a 4 GiB one too, before reading them", async () => {
  const huge = encodeFrame(V2Type.Change, new Uint8Array(0));
  new DataView(huge.buffer).setUint32(1, 0xffffffff);
  await assertRejects(() => readOne(huge), /CHANGE declares 4294967295 bytes, over its 1048576/);
  const ack = encodeFrame(V2Type.Ack, new Uint8Array(9));
  await assertRejects(() => readOne(ack), /ACK declares 9 bytes, over its 8/);
});

Deno.test("v2 refuses a zlib bomb past the size it allows", async () => {
  const frame = encodeSnapshotV2(1, new Uint8Array(4 << 20));
  assert(frame.length < 64 * 1024);
  await assertRejects(
    async () => decodeSnapshotV2(await readOne(frame, 1 << 20), 1 << 20),
    /does not decompress within 1048576 bytes/,
  );
});

Deno.test("a CHANGE of more statements than the server splits is refused, not split (V8 aborts the process past 2^27)", async () => {
  // 2^24 + 1 statements, all empty: a body of 2^24 NULs, 16 KiB deflated.
  const body = new Uint8Array(1 << 24);
  const payload = new Uint8Array(9 + 0);
  new DataView(payload.buffer).setBigUint64(0, 1n);
  payload[8] = 1;
  const deflated = deflate(body, 9);
  const frame = encodeFrame(V2Type.Change, concat(payload, deflated));
  await assertRejects(
    async () => decodeChangeV2(await readOne(frame, 1 << 30), 1 << 30),
    /carries more than 16777216 statements/,
  );
  // v1's CHANGE the same.
  const v1 = new Uint8Array(5 + 4 + deflated.length);
  new DataView(v1.buffer).setUint8(0, PacketType.Change);
  new DataView(v1.buffer).setUint32(1, 4 + deflated.length);
  new DataView(v1.buffer).setUint32(5, 1);
  v1.set(deflated, 9);
  assertThrows(
    () => decodeChange({ type: PacketType.Change, payload: v1.subarray(5) }, 1 << 30),
    /carries more than 16777216 statements/,
  );
  // A change of many real statements still goes through.
  const many = Array.from({ length: 100_000 }, (_, i) => `UPDATE vars SET intval=${i}`);
  const decoded = decodeChangeV2(await readOne(encodeChangeV2(7, many), 1 << 30), 1 << 30);
  assertEquals(decoded.statements, many);
});

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

Deno.test("v2 refuses a HELLO without its magic, and u64s past 2^53", async () => {
  const frame = encodeHello({ protocol: 2, node: "n", nonce: nonce(0) });
  frame[5] = 0x58;
  const forged = encodeFrame(V2Type.Hello, frame.subarray(5, -4));
  await assertRejects(async () => decodeHello(await readOne(forged)), /lacks its magic/);
  const big = encodeFrame(V2Type.Ack, new Uint8Array(8).fill(0xff));
  await assertRejects(
    async () => decodeVersionFrame(await readOne(big), V2Type.Ack),
    /past 2\^53/,
  );
});

Deno.test("the packets of encrypted backups decode to what was encoded", async () => {
  const place = {
    backupId: new Uint8Array(16).fill(7),
    keyId: new Uint8Array(8).fill(9),
    log: PAST_U32,
    offset: 64,
  };
  assertEquals(decodePlace(await readOne(encodePlace(place))), place);
  // A plain backup's key id travels as zeros, and reads back as none.
  const plain = { ...place, keyId: undefined };
  assertEquals(decodePlace(await readOne(encodePlace(plain))), plain);
  const record = Uint8Array.of(1, 2, 3);
  const seal = Uint8Array.of(4, 5);
  for (
    const change of [{ log: 3, offset: 99, seal: undefined, record }, {
      log: 3,
      offset: 99,
      seal,
      record,
    }]
  ) {
    assertEquals(decodeSealedChange(await readOne(encodeSealedChange(change))), change);
  }
  const wrappedKey = new TextEncoder().encode("{}");
  assertEquals(decodeSealedInit(await readOne(encodeSealedInit(wrappedKey, record))), {
    wrappedKey,
    base: record,
  });
  const initFile = { wrappedKey, size: PAST_U32 };
  assertEquals(
    decodeSealedInitFile(await readOne(encodeSealedInitFile(wrappedKey, PAST_U32))),
    initFile,
  );
  const snapshotFile = { version: PAST_U32, size: 5 * 2 ** 30 };
  assertEquals(
    decodeSnapshotFile(await readOne(encodeSnapshotFile(PAST_U32, 5 * 2 ** 30))),
    snapshotFile,
  );
  const rekey = { read: keyDigest(wrappedKey), wrappedKey: new TextEncoder().encode("{ }") };
  assertEquals(decodeSealedKeyIf(await readOne(encodeSealedKeyIf(rekey))), rekey);
  const upgrade = { version: PAST_U32, bytes: 5 << 20, wrappedKey };
  assertEquals(decodeSealedUpgrade(await readOne(encodeSealedUpgrade(upgrade))), upgrade);
  // A seal length past the payload does not parse.
  const cut = encodeFrame(V2Type.SealedChange, new Uint8Array(8 + 8 + 4).fill(0xff, 16));
  await assertRejects(async () => decodeSealedChange(await readOne(cut)), /cut short/);
});
