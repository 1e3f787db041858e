import { Buffer } from "node:buffer";
import { crc32, zstdCompressSync } from "node:zlib";
import {
  CorruptBackupError,
  decodeSegmentHeader,
  encodeSegmentHeader,
  FORMAT_VERSION,
  hasSegmentMagic,
  scanSegment,
  SEGMENT_HEADER_SIZE,
  SegmentKind,
  type SegmentRecord,
  type SegmentTail,
} from "./segment.ts";
import {
  Codec,
  decodeStatements,
  encodeRecord,
  encodeStatements,
  MAX_PAYLOAD_BYTES,
  MAX_STATEMENTS,
  RECORD_HEADER_SIZE,
  RecordKind,
} from "./record.ts";
import { KeptBuffer } from "../fs/kept_buffer.ts";
import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { craftRecord } from "../../tests/support/records.ts";

const ID = new Uint8Array(16).fill(7);
const HEADER = encodeSegmentHeader({ kind: SegmentKind.Log, number: 1, backupId: ID, firstLog: 0 });
const CRC_AT = SEGMENT_HEADER_SIZE - 4;

/** Sets a header field and fixes the header CRC, so only the field itself is wrong. */
function withField(header: Uint8Array, set: (view: DataView) => void): Uint8Array {
  const out = header.slice();
  const view = new DataView(out.buffer);
  set(view);
  view.setUint32(CRC_AT, crc32(out.subarray(0, CRC_AT)));
  return out;
}

function change(version: number, size = 40): Uint8Array {
  const filler = "ab".repeat(size);
  return encodeRecord(
    RecordKind.Change,
    version,
    encodeStatements([`INSERT INTO t VALUES ('${filler}')`, `-- ${version}`]),
  );
}

const concat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);

/** Writes `bytes` to a temp file and scans it: the records, and the tail or the error. */
function scan(
  bytes: Uint8Array,
  decode = true,
): { records: SegmentRecord[]; tail?: SegmentTail; error?: CorruptBackupError; path: string } {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/log-1.clnb`;
  try {
    Deno.writeFileSync(path, bytes);
    const file = Deno.openSync(path, { read: true });
    const records: SegmentRecord[] = [];
    try {
      const scanner = scanSegment(file, path, { decode });
      for (let step = scanner.next();; step = scanner.next()) {
        if (step.done) return { records, tail: step.value, path };
        records.push(step.value);
      }
    } catch (error) {
      if (!(error instanceof CorruptBackupError)) throw error;
      return { records, error, path };
    } finally {
      file.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("segment header: round-trips both kinds", () => {
  assertEquals(decodeSegmentHeader(HEADER, "p"), {
    kind: SegmentKind.Log,
    number: 1,
    backupId: ID,
    firstLog: 0,
  });
  const header = { kind: SegmentKind.Base, number: 2 ** 40 + 479, backupId: ID, firstLog: 3 };
  const base = encodeSegmentHeader(header);
  assertEquals(base.length, SEGMENT_HEADER_SIZE);
  assertEquals(decodeSegmentHeader(base, "p"), header);
  assert(hasSegmentMagic(base));
  assertEquals(hasSegmentMagic(base.subarray(0, 7)), false);
});

Deno.test("segment header: damage is reported with the path", () => {
  const expectCorrupt = (bytes: Uint8Array, why: RegExp) => {
    let error: unknown;
    try {
      decodeSegmentHeader(bytes, "/b/log-1.clnb");
    } catch (caught) {
      error = caught;
    }
    assert(error instanceof CorruptBackupError, String(error));
    assertEquals(error.path, "/b/log-1.clnb");
    assertMatch(error.message, why);
  };
  expectCorrupt(HEADER.subarray(0, SEGMENT_HEADER_SIZE - 1), /missing segment header/);
  expectCorrupt(new Uint8Array(SEGMENT_HEADER_SIZE), /missing segment header/);
  const flipped = HEADER.slice();
  flipped[20] ^= 1;
  expectCorrupt(flipped, /segment header checksum mismatch/);
  // An unknown kind with a good CRC.
  expectCorrupt(withField(HEADER, (v) => v.setUint32(12, 3)), /unknown segment kind 3/);
  // A log that names a first log, and a non-zero reserved byte.
  expectCorrupt(withField(HEADER, (v) => v.setUint32(44, 1)), /fields out of range/);
  // A key id in a segment not flagged as encrypted.
  expectCorrupt(withField(HEADER, (v) => v.setUint8(55, 1)), /fields out of range/);
});

Deno.test("segment header: an encrypted segment carries its key id; unknown flags ask to upgrade", () => {
  const keyId = new Uint8Array(8).fill(7);
  const sealed = encodeSegmentHeader({ ...decodeSegmentHeader(HEADER, "p"), keyId });
  assertEquals(decodeSegmentHeader(sealed, "p").keyId, keyId);
  assertEquals(decodeSegmentHeader(HEADER, "p").keyId, undefined);
  let error: unknown;
  try {
    decodeSegmentHeader(withField(HEADER, (v) => v.setUint32(48, 4)), "p");
  } catch (caught) {
    error = caught;
  }
  assert(!(error instanceof CorruptBackupError), String(error));
  assertMatch(String(error), /segment flags 4, which this cln-backup does not know: upgrade/);
});

Deno.test("segment header: only a sealed base says its first log is bound", () => {
  const keyId = new Uint8Array(8).fill(7);
  const base = { kind: SegmentKind.Base, number: 9, backupId: ID, firstLog: 2, keyId } as const;
  const bound = encodeSegmentHeader({ ...base, firstLogBound: true });
  assertEquals(decodeSegmentHeader(bound, "p").firstLogBound, true);
  assertEquals(decodeSegmentHeader(encodeSegmentHeader(base), "p").firstLogBound, undefined);
  // On a log, or without the seal flag, it is damage.
  for (
    const header of [
      withField(HEADER, (v) => v.setUint32(48, 3)),
      withField(bound, (v) => v.setUint32(48, 2)),
    ]
  ) {
    let error: unknown;
    try {
      decodeSegmentHeader(header, "p");
    } catch (caught) {
      error = caught;
    }
    assert(error instanceof CorruptBackupError, String(error));
    assertMatch(error.message, /segment header fields out of range/);
  }
});

Deno.test("segment header: a newer format asks to upgrade, not 'damaged'", () => {
  const newer = withField(HEADER, (v) => v.setUint32(8, FORMAT_VERSION + 1));
  let error: unknown;
  try {
    decodeSegmentHeader(newer, "p");
  } catch (caught) {
    error = caught;
  }
  assert(error instanceof Error && !(error instanceof CorruptBackupError), String(error));
  assertMatch(error.message, /has format 4, this cln-backup reads format 3: upgrade cln-backup/);
});

Deno.test("segment header: format 2 (before backups had an id) says what to do", () => {
  // Format 2's 32-byte header: no backup id.
  const old = new Uint8Array(32);
  old.set(HEADER.subarray(0, 8));
  new DataView(old.buffer).setUint32(8, 2);
  let error: unknown;
  try {
    decodeSegmentHeader(old, "p");
  } catch (caught) {
    error = caught;
  }
  assertMatch(
    String(error),
    /"p" has format 2, written by a development version .* "cln-backup init --lightning-dir DIR <new url>" for a new backup/,
  );
});

Deno.test("scanSegment: reads every record in order, ending clean", () => {
  const records = [change(1), change(2, 1500), change(3)];
  const { records: read, tail } = scan(concat(HEADER, ...records));
  assertEquals(read.map((r) => r.header.version), [1, 2, 3]);
  assertEquals(read[1].header.codec, Codec.Zstd);
  assertEquals(decodeStatements(read[2].payload!), [
    `INSERT INTO t VALUES ('${"ab".repeat(40)}')`,
    "-- 3",
  ]);
  assertEquals(read.map((r) => r.offset), [
    SEGMENT_HEADER_SIZE,
    SEGMENT_HEADER_SIZE + records[0].length,
    SEGMENT_HEADER_SIZE + records[0].length + records[1].length,
  ]);
  const size = SEGMENT_HEADER_SIZE + records.reduce((n, r) => n + r.length, 0);
  assertEquals(tail, { end: size, tornBytes: 0 });
});

Deno.test("scanSegment: an empty segment and decode: false", () => {
  assertEquals(scan(HEADER).tail, { end: SEGMENT_HEADER_SIZE, tornBytes: 0 });
  const { records } = scan(concat(HEADER, change(1), change(2)), false);
  assertEquals(records.map((r) => [r.header.version, r.payload]), [[1, undefined], [
    2,
    undefined,
  ]]);
});

Deno.test("scanSegment: payloads decoded into one reused buffer are the same bytes", () => {
  // Raw and zstd records, large and small: each payload, as it is read, is the one a scan
  // with a new buffer each gives, and a view of the one buffer.
  const records = [change(1, 3000), change(2), change(3, 6000), change(4, 10), change(5, 900)];
  const bytes = concat(HEADER, ...records);
  const expected = scan(bytes).records.map((r) => r.payload);
  assertEquals(expected.map((p) => p!.length > 1000), [true, false, true, false, true]);
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/log-1.clnb`;
  Deno.writeFileSync(path, bytes);
  const file = Deno.openSync(path, { read: true });
  try {
    const payloads = new KeptBuffer();
    const buffers = new Set<ArrayBufferLike>();
    let i = 0;
    for (const { payload } of scanSegment(file, path, { decode: true, payloads })) {
      assertEquals(payload, expected[i++]);
      buffers.add(payload!.buffer);
    }
    assertEquals(i, records.length);
    // Grown once for the first payload, once for the larger third one.
    assertEquals(buffers.size, 2, "a new buffer for each payload");
  } finally {
    file.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Bytes up to the last one that is not zero. */
const dataLength = (bytes: Uint8Array) => bytes.findLastIndex((b) => b !== 0) + 1;

Deno.test("scanSegment: torn tails (what a crash mid-append leaves) are reported, not yielded", () => {
  const good = concat(HEADER, change(1), change(2));
  const last = change(3, 300);
  const cases: [string, Uint8Array][] = [
    ["a header shorter than 64 bytes", last.subarray(0, RECORD_HEADER_SIZE - 5)],
    ["a header of one byte", last.subarray(0, 1)],
    ["a checked header whose payload runs past the end", last.subarray(0, last.length - 1)],
    ["a checked header and no payload at all", last.subarray(0, RECORD_HEADER_SIZE)],
  ];
  // A payload that fails its CRC ending exactly at the end of the file.
  const badPayload = last.slice();
  badPayload[last.length - 1] ^= 0xff;
  cases.push(["a last payload that fails its CRC", badPayload]);
  // A header that fails its check with only zeros after it (the file grew before the bytes
  // of the append landed).
  cases.push(["a damaged header, then zeros", concat(last.subarray(0, 20), new Uint8Array(300))]);
  // A damaged header with the rest of its record after it: no record follows.
  const lastHeader = last.slice();
  lastHeader[2] ^= 1;
  cases.push(["a damaged header, then its payload", lastHeader]);
  // An append into zeros whose first page a power cut lost, its later pages kept.
  let seed = 1;
  const hex = Array.from(
    { length: 16000 },
    () => ((seed = seed * 48271 % 2147483647) % 16).toString(16),
  );
  const paged = encodeRecord(
    RecordKind.Change,
    3,
    encodeStatements([`INSERT INTO t VALUES (x'${hex.join("")}')`]),
  );
  assert(paged.length > 6000, `${paged.length} bytes`);
  paged.fill(0, 0, 4096);
  cases.push([
    "a record's first page lost, its last kept, then zeros",
    concat(paged, new Uint8Array(4096)),
  ]);
  for (const [what, tail] of cases) {
    const result = scan(concat(good, tail));
    assertEquals(result.error, undefined, what);
    assertEquals(result.records.map((r) => r.header.version), [1, 2], what);
    // The torn bytes end at the last one that is not zero.
    assertEquals(result.tail, { end: good.length, tornBytes: dataLength(tail) }, what);
    assert(dataLength(tail) > 0, what);
  }
});

Deno.test("scanSegment: zeros to the end of the file are no record: the segment ends", () => {
  const good = concat(HEADER, change(1), change(2));
  const last = change(3, 300);
  for (
    const [what, after] of [
      ["zeros written ahead of the records", new Uint8Array(4096)],
      ["fewer zeros than a header", new Uint8Array(10)],
    ] as const
  ) {
    const result = scan(concat(good, after));
    assertEquals(result.error, undefined, what);
    assertEquals(result.records.map((r) => r.header.version), [1, 2], what);
    assertEquals(result.tail, { end: good.length, tornBytes: 0 }, what);
  }
  // Into such zeros a crash leaves a record cut short, with zeros where the rest did not land.
  for (const cut of [1, 20, RECORD_HEADER_SIZE, RECORD_HEADER_SIZE + 5, last.length - 1]) {
    const landed = last.subarray(0, cut);
    const result = scan(concat(good, landed, new Uint8Array(4096 - cut)));
    assertEquals(result.error, undefined, `cut at ${cut}`);
    assertEquals(result.tail, { end: good.length, tornBytes: dataLength(landed) }, `cut at ${cut}`);
  }
});

Deno.test("scanSegment: a record the scan's first size cuts is read once the file has grown", () => {
  const one = change(1);
  const two = change(2, 300);
  // Cut in the header, in the payload, and at the header's end.
  for (const cut of [10, RECORD_HEADER_SIZE, RECORD_HEADER_SIZE + 40]) {
    const dir = Deno.makeTempDirSync();
    const path = `${dir}/log-1.clnb`;
    Deno.writeFileSync(path, concat(HEADER, one, two.subarray(0, cut)));
    const file = Deno.openSync(path, { read: true });
    try {
      const scanner = scanSegment(file, path);
      const first = scanner.next();
      assertEquals(first.done ? first.value : first.value.header.version, 1);
      // The writer goes on: the rest of the record, and the zeros ahead of the next.
      Deno.writeFileSync(path, concat(two.subarray(cut), new Uint8Array(4096)), { append: true });
      const step = scanner.next();
      assertEquals(step.done ? step.value : step.value.header.version, 2, `cut at ${cut}`);
      assertEquals(scanner.next().value, {
        end: HEADER.length + one.length + two.length,
        tornBytes: 0,
      });
    } finally {
      file.close();
      Deno.removeSync(dir, { recursive: true });
    }
  }
});

Deno.test("scanSegment: damage before the end is corruption, never skipped", () => {
  const one = change(1);
  const two = change(2);
  const three = change(3);
  const expectCorrupt = (bytes: Uint8Array, offset: number, why: RegExp, what: string) => {
    const result = scan(bytes);
    assert(result.error, `${what}: should be refused`);
    assertEquals(result.error.offset, offset, what);
    assertEquals(result.error.path, result.path, what);
    assertMatch(result.error.message, why, what);
    assertEquals(result.records.map((r) => r.header.version), [1], what);
  };
  const at2 = SEGMENT_HEADER_SIZE + one.length;
  // A flipped bit in the middle record's payload.
  const payload = two.slice();
  payload[RECORD_HEADER_SIZE + 2] ^= 1;
  expectCorrupt(
    concat(HEADER, one, payload, three),
    at2,
    /record payload checksum mismatch/,
    "payload",
  );
  // A flipped bit in the middle record's header.
  const header = two.slice();
  header[9] ^= 1;
  expectCorrupt(
    concat(HEADER, one, header, three),
    at2,
    /record header checksum mismatch/,
    "header",
  );
  // A damaged header with a whole record after it, and zeros after that.
  const middleHeader = two.slice();
  middleHeader[2] ^= 1;
  expectCorrupt(
    concat(HEADER, one, middleHeader, three, new Uint8Array(4096)),
    at2,
    /record header checksum mismatch/,
    "header, a record, zeros",
  );
  // A run of zeros in the middle, followed by data.
  expectCorrupt(
    concat(HEADER, one, new Uint8Array(64), three),
    at2,
    /record header checksum mismatch/,
    "zeros then data",
  );
  // A payload that fails its CRC and is followed by garbage, so it does not end the file.
  const lastPayload = two.slice();
  lastPayload[two.length - 1] ^= 1;
  expectCorrupt(
    concat(HEADER, one, lastPayload, new Uint8Array([1])),
    at2,
    /record payload checksum mismatch/,
    "payload then a byte",
  );
});

Deno.test("scanSegment: a damaged header, then 64 MiB of zeros and a byte, is a torn tail", () => {
  // Searched for a record header at every offset, this took 12 s (256 MiB: 46 s); passed
  // over as zeros no header can start in, a fraction of a second.
  const good = concat(HEADER, change(1), change(2));
  const damaged = change(3).subarray(0, RECORD_HEADER_SIZE).slice();
  damaged[2] ^= 1;
  const tail = concat(damaged, new Uint8Array(64 << 20), new Uint8Array([1]));
  const result = scan(concat(good, tail));
  assertEquals(result.error, undefined);
  assertEquals(result.records.map((r) => r.header.version), [1, 2]);
  assertEquals(result.tail, { end: good.length, tornBytes: tail.length });
});

Deno.test("scanSegment: a whole record after a damaged header is found wherever it lies", () => {
  const good = concat(HEADER, change(1), change(2));
  const damaged = change(3, 300).slice();
  damaged[2] ^= 1;
  const four = change(4, 300);
  // From just after the damaged header's first byte, the search reads 4 MiB at a time: a
  // record right after it, one whose header or payload a window's end cuts, one past zeros.
  const window = 4 << 20;
  for (const at of [damaged.length, window - 15, window - 40, window + 4096 * 3 + 5]) {
    const gap = new Uint8Array(at - damaged.length);
    const result = scan(concat(good, damaged, gap, four, new Uint8Array(4096)));
    assert(result.error, `a record at ${at}: should be refused`);
    assertEquals(result.error.offset, good.length, `a record at ${at}`);
    assertMatch(result.error.message, /record header checksum mismatch/, `a record at ${at}`);
  }
});

Deno.test("scanSegment: a zstd payload that passes its CRC but does not decode", () => {
  const stored = new Uint8Array([0xff, 0xee, 0xdd, 0xcc, 0xbb]);
  const record = craftRecord({
    kind: RecordKind.Change,
    codec: Codec.Zstd,
    version: 2,
    stored,
    rawLength: 100,
  });
  const bytes = concat(HEADER, change(1), record);
  const result = scan(bytes);
  assert(result.error, "should be refused");
  assertMatch(result.error.message, /record payload does not decode/);
  // Without decoding, the record checks (its CRC is right) and is yielded.
  const lazy = scan(bytes, false);
  assertEquals(lazy.records.map((r) => r.header.version), [1, 2]);
  assertEquals(lazy.tail, { end: bytes.length, tornBytes: 0 });
});

Deno.test("scanSegment: a length over the limit is refused before anything is allocated", () => {
  // A checked header that claims 400 MiB raw over a small zstd payload of zeros: decoding it
  // would allocate the claimed size.
  const stored = zstdCompressSync(new Uint8Array(1 << 20));
  for (
    const [what, storedLength, rawLength] of [
      ["raw", stored.length, 400 * 1024 * 1024],
      ["stored", MAX_PAYLOAD_BYTES + 1, 1 << 20],
    ] as const
  ) {
    const record = craftRecord({
      kind: RecordKind.Change,
      codec: Codec.Zstd,
      version: 2,
      stored,
      storedLength,
      rawLength,
    });
    // Last in the file, where a torn record would be: still refused.
    const result = scan(concat(HEADER, change(1), record));
    assert(result.error, `${what}: should be refused`);
    assertEquals(result.error.offset, SEGMENT_HEADER_SIZE + change(1).length, what);
    assertMatch(
      result.error.message,
      new RegExp(
        `^Cannot read backup: record claims ${Math.max(storedLength, rawLength)} ` +
          `bytes, over the limit of ${MAX_PAYLOAD_BYTES} at offset \\d+ of "`,
      ),
      what,
    );
  }
});

Deno.test("scanSegment: a change of more than MAX_STATEMENTS statements is damage, not a crash", () => {
  // Splitting 2^27 NULs would abort the process: a crafted record is refused at 2^24 + 1.
  for (const [nuls, refused] of [[MAX_STATEMENTS - 1, false], [MAX_STATEMENTS, true]] as const) {
    const raw = new Uint8Array(nuls);
    const record = craftRecord({
      kind: RecordKind.Change,
      codec: Codec.Zstd,
      version: 2,
      stored: zstdCompressSync(raw),
      rawLength: raw.length,
    });
    const result = scan(concat(HEADER, change(1), record));
    if (!refused) {
      assertEquals(result.error, undefined);
      assertEquals(decodeStatements(result.records[1].payload!, true).length, MAX_STATEMENTS);
      continue;
    }
    assert(result.error, "should be refused");
    assertEquals(result.error.offset, SEGMENT_HEADER_SIZE + change(1).length);
    assertMatch(result.error.message, /a change of more than 16777216 statements at offset/);
  }
});
