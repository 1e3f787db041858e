import { crc32 } from "node:zlib";
import {
  Codec,
  decodeRecordHeader,
  decodeSnapshotEnd,
  decodeStatements,
  encodeRecord,
  encodeSnapshotEnd,
  encodeStatements,
  frameRecord,
  linkRecord,
  MAX_STATEMENTS,
  payloadChecks,
  rawPayload,
  RECORD_HEADER_SIZE,
  RecordKind,
  storePayload,
  tooManyStatements,
  unknownCodec,
} from "./record.ts";
import { assert, assertEquals, assertMatch, assertThrows } from "../../tests/support/assert.ts";

const encoder = new TextEncoder();

/** Sets one header byte and fixes the header CRC, so only the field itself is wrong. */
function withHeaderByte(record: Uint8Array, at: number, value: number): Uint8Array {
  const out = record.slice();
  out[at] = value;
  new DataView(out.buffer).setUint32(0, crc32(out.subarray(4, RECORD_HEADER_SIZE)));
  return out;
}

function roundTrip(kind: RecordKind, version: number, raw: Uint8Array) {
  const record = encodeRecord(kind, version, raw);
  const header = decodeRecordHeader(record);
  assert(header, "the header decodes");
  const stored = record.subarray(RECORD_HEADER_SIZE);
  assert(payloadChecks(header, stored), "the payload checks");
  return { record, header, raw: rawPayload(header, stored) };
}

Deno.test("record: a small change is stored raw and round-trips", () => {
  const raw = encodeStatements(["INSERT INTO t VALUES (1)", "UPDATE t SET a = 2"]);
  const { record, header, raw: back } = roundTrip(RecordKind.Change, 17, raw);
  assertEquals(header, {
    kind: RecordKind.Change,
    codec: Codec.Raw,
    version: 17,
    storedLength: raw.length,
    rawLength: raw.length,
    payloadCrc: crc32(raw),
    link: 0,
  });
  assertEquals(record.length, RECORD_HEADER_SIZE + raw.length);
  assertEquals(back, raw);
});

Deno.test("record: a link set after framing is read back, and the record still checks", () => {
  const raw = encodeStatements(["INSERT INTO t VALUES (1)"]);
  const record = linkRecord(encodeRecord(RecordKind.Change, 5, raw), 3);
  const header = decodeRecordHeader(record)!;
  assertEquals([header.link, header.version], [3, 5]);
  assert(payloadChecks(header, record.subarray(RECORD_HEADER_SIZE)), "the payload checks");
});

Deno.test("record: a large compressible payload is compressed and round-trips", () => {
  const hex = "0123456789abcdef".repeat(4096);
  const raw = encodeStatements([`INSERT INTO t VALUES (x'${hex}')`]);
  const { header, raw: back } = roundTrip(RecordKind.Change, 2 ** 40 + 3, raw);
  assertEquals(header.codec, Codec.Zstd);
  assertEquals(header.version, 2 ** 40 + 3);
  assertEquals(header.rawLength, raw.length);
  assert(header.storedLength < raw.length / 4, "zstd shrinks hex");
  assertEquals(back, raw);
});

Deno.test("record: a compressible payload under 512 bytes stays raw", () => {
  const raw = encodeStatements([`SELECT '${"a".repeat(502)}'`]);
  assertEquals(raw.length, 511);
  assertEquals(roundTrip(RecordKind.Change, 1, raw).header.codec, Codec.Raw);
  const larger = encodeStatements([`SELECT '${"a".repeat(503)}'`]);
  assertEquals(roundTrip(RecordKind.Change, 1, larger).header.codec, Codec.Zstd);
});

Deno.test("record: an incompressible payload stays raw", () => {
  const raw = new Uint8Array(4096);
  crypto.getRandomValues(raw);
  const { header, raw: back } = roundTrip(RecordKind.SnapshotPart, 5, raw);
  assertEquals(header.codec, Codec.Raw);
  assertEquals(header.kind, RecordKind.SnapshotPart);
  assertEquals(back, raw);
});

Deno.test("record: an empty payload round-trips", () => {
  const { header, raw } = roundTrip(RecordKind.Change, 0, new Uint8Array(0));
  assertEquals(header.storedLength, 0);
  assertEquals(raw, new Uint8Array(0));
});

Deno.test("record: framed into a reused buffer, a record is the bytes of a new one", () => {
  const into = new Uint8Array(1 << 16);
  const scratch = new Uint8Array(1 << 16);
  for (const raw of [encoder.encode("x".repeat(40_000)), new Uint8Array(100).fill(7)]) {
    // Whatever the buffers held before (the last record, or any bytes) does not show.
    into.fill(0xff);
    scratch.fill(0xff);
    const record = frameRecord(
      RecordKind.SnapshotPart,
      9,
      storePayload(9, raw, scratch),
      undefined,
      into,
    );
    assertEquals(record.buffer, into.buffer);
    assertEquals(record, encodeRecord(RecordKind.SnapshotPart, 9, raw));
  }
});

Deno.test("record: a header that does not check is refused", () => {
  const record = encodeRecord(RecordKind.Change, 9, encoder.encode("INSERT INTO t VALUES (1)"));
  // Too short.
  assertEquals(decodeRecordHeader(record.subarray(0, RECORD_HEADER_SIZE - 1)), undefined);
  // Any flipped bit of the header fails its CRC.
  for (let at = 0; at < RECORD_HEADER_SIZE; at++) {
    const damaged = record.slice();
    damaged[at] ^= 0x10;
    assertEquals(decodeRecordHeader(damaged), undefined, `byte ${at}`);
  }
  // All zero bytes (preallocated space) are not a record.
  assertEquals(decodeRecordHeader(new Uint8Array(RECORD_HEADER_SIZE)), undefined);
});

Deno.test("record: unknown kind or flags are refused even with a good CRC", () => {
  const record = encodeRecord(RecordKind.Change, 9, encoder.encode("x"));
  assert(decodeRecordHeader(withHeaderByte(record, 4, 4)), "kind 4 (seal) is known");
  assertEquals(decodeRecordHeader(withHeaderByte(record, 4, 0)), undefined);
  assertEquals(decodeRecordHeader(withHeaderByte(record, 4, 5)), undefined);
  assertEquals(decodeRecordHeader(withHeaderByte(record, 6, 1)), undefined);
  assertEquals(decodeRecordHeader(withHeaderByte(record, 7, 1)), undefined);
});

Deno.test("record: an unknown codec checks, and is named by unknownCodec", () => {
  const record = encodeRecord(RecordKind.Change, 9, encoder.encode("x"));
  assertEquals(unknownCodec(decodeRecordHeader(withHeaderByte(record, 5, 3))!), undefined);
  assertMatch(
    unknownCodec(decodeRecordHeader(withHeaderByte(record, 5, 4))!)!,
    /^record stored with codec 4, which this cln-backup does not know$/,
  );
});

Deno.test("record: a payload of the wrong length or CRC does not check", () => {
  const record = encodeRecord(RecordKind.Change, 9, encoder.encode("INSERT INTO t VALUES (1)"));
  const header = decodeRecordHeader(record)!;
  const stored = record.subarray(RECORD_HEADER_SIZE);
  assert(payloadChecks(header, stored));
  assertEquals(payloadChecks(header, stored.subarray(1)), false);
  const flipped = stored.slice();
  flipped[3] ^= 1;
  assertEquals(payloadChecks(header, flipped), false);
});

Deno.test("record: a stored payload that does not decode to rawLength gives undefined", () => {
  const raw = encoder.encode("abc".repeat(1000));
  const record = encodeRecord(RecordKind.Change, 1, raw);
  const header = decodeRecordHeader(record)!;
  assertEquals(header.codec, Codec.Zstd);
  const stored = record.subarray(RECORD_HEADER_SIZE);
  assertEquals(rawPayload({ ...header, rawLength: raw.length + 1 }, stored), undefined);
  assertEquals(rawPayload(header, new Uint8Array([0xff, 0xff, 0xff, 0xff])), undefined);
  // A raw payload must match its raw length too.
  assertEquals(rawPayload({ ...header, codec: Codec.Raw, rawLength: 2 }, stored), undefined);
});

Deno.test("record: statements join with NUL and split back, UTF-8 included", () => {
  const statements = [
    "INSERT INTO t VALUES ('ünïcödé ⚡')",
    "UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = 4",
  ];
  const payload = encodeStatements(statements);
  assertEquals(payload.filter((b) => b === 0).length, 1);
  assertEquals(decodeStatements(payload), statements);
  assertEquals(encodeStatements([]), new Uint8Array(0));
  assertEquals(decodeStatements(new Uint8Array(0)), []);
});

Deno.test("record: more than MAX_STATEMENTS statements are refused before a split", () => {
  const joined = new Uint8Array(MAX_STATEMENTS).fill(0x41);
  assertEquals(tooManyStatements(joined), false, "no NUL: one statement");
  joined[7] = 0;
  joined[MAX_STATEMENTS - 1] = 0;
  assertEquals(tooManyStatements(joined), false, "three statements");
  const nuls = new Uint8Array(MAX_STATEMENTS);
  assertEquals(tooManyStatements(nuls.subarray(1)), false, "exactly the limit");
  assertEquals(tooManyStatements(nuls), true, "one more");
  assertThrows(() => decodeStatements(nuls, true), /more than 16777216 statements/);
  assertThrows(
    () => encodeStatements(new Array(MAX_STATEMENTS + 1).fill("")),
    /^Cannot store a change of 16777217 statements, over the limit/,
  );
});

Deno.test("record: unchecked statements that are not UTF-8 are refused", () => {
  let threw = false;
  try {
    decodeStatements(new Uint8Array([0x41, 0xff, 0x42]));
  } catch {
    threw = true;
  }
  assert(threw, "invalid UTF-8 throws");
  // Bytes that passed a CRC are decoded without the (slower) check.
  assertEquals(decodeStatements(new Uint8Array([0x41, 0xff, 0x42]), true), ["A\ufffdB"]);
});

Deno.test("record: snapshot end round-trips sizes above 4 GiB", () => {
  assertEquals(decodeSnapshotEnd(encodeSnapshotEnd(5 * 2 ** 32 + 7, 20481)), {
    totalBytes: 5 * 2 ** 32 + 7,
    parts: 20481,
  });
  const padded = new Uint8Array(20);
  padded.set(encodeSnapshotEnd(12, 1), 8);
  assertEquals(decodeSnapshotEnd(padded.subarray(8)), { totalBytes: 12, parts: 1 });
});
