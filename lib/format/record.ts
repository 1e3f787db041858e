/**
 * Records of the cln-backup log format (see docs/FORMAT.md).
 *
 * A record is a 32-byte header followed by its stored payload. The header carries its own
 * CRC, so a torn tail (a header that checks but runs past the end of the file) can be told
 * apart from damage in the middle of a file.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { zstdCompress, zstdDecompress } from "./zstd.ts";
import type { ReusedBuffer } from "../fs/kept_buffer.ts";

export const RECORD_HEADER_SIZE = 32;

/** What a record holds. */
export const RecordKind = {
  /** One database transaction: its statements, UTF-8, joined by NUL bytes. */
  Change: 1,
  /** The next piece of a snapshot (a whole SQLite database file). */
  SnapshotPart: 2,
  /** Ends a snapshot: u64 total bytes, u32 part count. */
  SnapshotEnd: 3,
  /** Ends a sealed log segment: u64 sequence of the log that follows it. */
  Seal: 4,
} as const;
export type RecordKind = typeof RecordKind[keyof typeof RecordKind];

/**
 * How a payload is stored: raw or zstd, each either as it is or sealed (encrypted and
 * authenticated, after compression) by the backup's {@linkcode RecordCipher}.
 */
export const Codec = { Raw: 0, Zstd: 1, SealedRaw: 2, SealedZstd: 3 } as const;
export type Codec = typeof Codec[keyof typeof Codec];

/** Whether a codec's payload is sealed by a {@linkcode RecordCipher}. */
export function isSealed(codec: Codec): boolean {
  return codec === Codec.SealedRaw || codec === Codec.SealedZstd;
}

/**
 * Seals and opens the stored payloads of one segment's records (lib/crypto/record_cipher.ts).
 * `fields` are bytes 4..24 of the record's header (kind, codec, flags, version, lengths) and
 * `offset` is where the record starts in its segment: both are bound to the sealed bytes, so
 * a record moved, copied or changed does not open.
 */
export interface RecordCipher {
  /** Bytes sealing adds to a payload. */
  readonly overhead: number;
  seal(fields: Uint8Array, offset: number, plain: Uint8Array): Uint8Array;
  /** The plain bytes; `undefined` when they do not authenticate. */
  open(fields: Uint8Array, offset: number, sealed: Uint8Array): Uint8Array | undefined;
}

/** Bytes a {@linkcode RecordCipher} adds to a payload: a 24-byte nonce and a 16-byte tag. */
export const SEALED_OVERHEAD = 40;

/** Where a record goes, for a segment whose records are sealed. */
export interface SealAt {
  cipher: RecordCipher;
  /** The record's offset in its segment. */
  offset: number;
}

/**
 * The most bytes a record's payload may hold, stored or raw: a reader checks a header's
 * lengths against it before it allocates anything. lightningd sends a transaction in one
 * `db_write`; the largest seen was 33.5 MB (a big channel's first commitment data), so this
 * leaves room for eight times that. A larger change is refused by the writer.
 */
export const MAX_PAYLOAD_BYTES = 256 * 1024 * 1024;

const KINDS = new Set<number>(Object.values(RecordKind));
const CODECS = new Set<number>(Object.values(Codec));
/** Bytes 4..24 of a header: what a {@linkcode RecordCipher} binds. */
const FIELDS_END = 24;
/**
 * Payloads smaller than this are stored raw: zstd saves them little. Measured on the hook
 * bench (two runs each, with zstd on a kept context, zstd.ts): from 2 KiB the p50 overhead
 * was 1.29 to 1.33x the disk floor and the recorded activity run 0.63x of v1's bytes; from
 * 512 bytes 1.34 to 1.37x and 0.57x; from 128 bytes 1.37 to 1.39x and 0.56x.
 */
const COMPRESS_FROM = 512;

export interface RecordHeader {
  kind: RecordKind;
  codec: Codec;
  version: number;
  storedLength: number;
  rawLength: number;
  payloadCrc: number;
  /** Bytes 28..32: `0`, but in an S3 change object what it follows (see {@linkcode linkRecord}). */
  link: number;
}

/** A payload as it is stored before any sealing: compressed when that pays. */
export interface StoredPayload {
  codec: typeof Codec.Raw | typeof Codec.Zstd;
  bytes: Uint8Array;
  rawLength: number;
}

/**
 * Compresses a payload when that makes it smaller; refuses one over the length limit. The
 * compressed bytes go into `scratch` when it is large enough (see zstdCompress).
 */
export function storePayload(
  version: number,
  raw: Uint8Array,
  scratch?: Uint8Array,
): StoredPayload {
  if (raw.length > MAX_PAYLOAD_BYTES) {
    throw new Error(
      `Cannot store version ${version}: it holds ${raw.length} bytes, over the limit of ` +
        `${MAX_PAYLOAD_BYTES} bytes a record can hold; please report this`,
    );
  }
  if (raw.length >= COMPRESS_FROM) {
    const compressed = zstdCompress(raw, scratch);
    if (compressed.length < raw.length) {
      return { codec: Codec.Zstd, bytes: compressed, rawLength: raw.length };
    }
  }
  return { codec: Codec.Raw, bytes: raw, rawLength: raw.length };
}

/** The bytes a record of `payload` takes, sealed by `cipher` when given. */
export function recordLength(payload: StoredPayload, cipher?: RecordCipher): number {
  return RECORD_HEADER_SIZE + payload.bytes.length + (cipher?.overhead ?? 0);
}

/**
 * Frames a stored payload as a record (header and payload), sealed when `seal` is given; in
 * `into` when it is large enough, else in a new buffer.
 */
export function frameRecord(
  kind: RecordKind,
  version: number,
  payload: StoredPayload,
  seal?: SealAt,
  into?: Uint8Array,
): Uint8Array {
  const length = recordLength(payload, seal?.cipher);
  const out = into && into.length >= length
    ? into.subarray(0, length).fill(0, 0, RECORD_HEADER_SIZE)
    : new Uint8Array(length);
  const view = new DataView(out.buffer, out.byteOffset, length);
  view.setUint8(4, kind);
  view.setUint8(
    5,
    !seal ? payload.codec : payload.codec === Codec.Zstd ? Codec.SealedZstd : Codec.SealedRaw,
  );
  view.setBigUint64(8, BigInt(version));
  view.setUint32(16, length - RECORD_HEADER_SIZE);
  view.setUint32(20, payload.rawLength);
  const stored = seal
    ? seal.cipher.seal(out.subarray(4, FIELDS_END), seal.offset, payload.bytes)
    : payload.bytes;
  view.setUint32(24, crc32(stored));
  view.setUint32(0, crc32(out.subarray(4, RECORD_HEADER_SIZE)));
  out.set(stored, RECORD_HEADER_SIZE);
  return out;
}

/** Encodes one record (header and payload) into a single buffer, compressing when it pays. */
export function encodeRecord(
  kind: RecordKind,
  version: number,
  raw: Uint8Array,
  seal?: SealAt,
): Uint8Array {
  return frameRecord(kind, version, storePayload(version, raw), seal);
}

/** Bytes 4..24 of a checked header, as a {@linkcode RecordCipher} binds them. */
export function headerFields(header: RecordHeader): Uint8Array {
  const out = new Uint8Array(FIELDS_END - 4);
  const view = new DataView(out.buffer);
  view.setUint8(0, header.kind);
  view.setUint8(1, header.codec);
  view.setBigUint64(4, BigInt(header.version));
  view.setUint32(12, header.storedLength);
  view.setUint32(16, header.rawLength);
  return out;
}

/** Why this reader cannot decode a record's codec, or `undefined` when it can. */
export function unknownCodec(header: RecordHeader): string | undefined {
  return CODECS.has(header.codec)
    ? undefined
    : `record stored with codec ${header.codec}, which this cln-backup does not know`;
}

/**
 * Whether a header that checks can start at `at` of `bytes`, by what needs no CRC: bytes 6
 * and 7 zero, and a known kind in byte 4. Any codec can: an unknown one is refused by name
 * (unknownCodec), not taken for damage.
 */
export function mayStartRecordHeader(bytes: Uint8Array, at: number): boolean {
  // Bytes 6 and 7 first: they pass most offsets over without a look-up.
  return bytes[at + 6] === 0 && bytes[at + 7] === 0 && KINDS.has(bytes[at + 4]);
}

/** Parses a record header; `undefined` when its CRC or fields do not check. */
export function decodeRecordHeader(bytes: Uint8Array): RecordHeader | undefined {
  if (bytes.length < RECORD_HEADER_SIZE || !mayStartRecordHeader(bytes, 0)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, RECORD_HEADER_SIZE);
  if (view.getUint32(0) !== crc32(bytes.subarray(4, RECORD_HEADER_SIZE))) return undefined;
  return {
    kind: view.getUint8(4) as RecordKind,
    codec: view.getUint8(5) as Codec,
    version: Number(view.getBigUint64(8)),
    storedLength: view.getUint32(16),
    rawLength: view.getUint32(20),
    payloadCrc: view.getUint32(24),
    link: view.getUint32(28),
  };
}

/**
 * Sets the last four bytes of a framed record's header, reserved elsewhere (`0`): an S3
 * change object keeps there what it was stored on (lib/backends/s3/layout.ts). Outside the
 * bytes a {@linkcode RecordCipher} binds, so it is set after sealing; the header's CRC covers it.
 */
export function linkRecord(record: Uint8Array, link: number): Uint8Array {
  const view = new DataView(record.buffer, record.byteOffset, RECORD_HEADER_SIZE);
  view.setUint32(28, link);
  view.setUint32(0, crc32(record.subarray(4, RECORD_HEADER_SIZE)));
  return record;
}

/** Why a checked header cannot be a record the writer wrote, or `undefined` when it can be. */
export function oversized(header: RecordHeader): string | undefined {
  const largest = Math.max(header.storedLength, header.rawLength);
  return largest > MAX_PAYLOAD_BYTES
    ? `record claims ${largest} bytes, over the limit of ${MAX_PAYLOAD_BYTES}`
    : undefined;
}

/** True when a stored payload matches the length and CRC its header promises. */
export function payloadChecks(header: RecordHeader, stored: Uint8Array): boolean {
  return stored.length === header.storedLength && crc32(stored) === header.payloadCrc;
}

/**
 * Turns a checked stored payload (opened first, when sealed) into its raw bytes; `undefined`
 * when it does not decode. A compressed one is decoded into `into`'s buffer when given.
 */
export function rawPayload(
  header: RecordHeader,
  stored: Uint8Array,
  into?: ReusedBuffer,
): Uint8Array | undefined {
  if (header.codec !== Codec.Zstd && header.codec !== Codec.SealedZstd) {
    return stored.length === header.rawLength ? stored : undefined;
  }
  return zstdDecompress(stored, header.rawLength, into);
}

const encoder = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder();

/**
 * The most statements a change may hold: far more than any transaction of lightningd, and
 * far below the 2^27 elements past which V8 aborts the whole process (no exception to catch)
 * when `split` makes the array. 130 KB of NULs, deflated, or a crafted record of 128 MiB
 * would reach that, so every reader counts before it splits.
 */
export const MAX_STATEMENTS = 1 << 24;

/** Whether `joined` (statements joined by NUL) holds more than {@linkcode MAX_STATEMENTS}. */
export function tooManyStatements(joined: Uint8Array): boolean {
  // Each statement past the first takes a NUL: a shorter payload cannot hold too many.
  if (joined.length < MAX_STATEMENTS) return false;
  let count = 1;
  for (let at = joined.indexOf(0); at !== -1; at = joined.indexOf(0, at + 1)) {
    if (++count > MAX_STATEMENTS) return true;
  }
  return false;
}

/**
 * The payload of a change record: statements joined by NUL, as in the v1 format. Refuses
 * more than a reader would split ({@linkcode MAX_STATEMENTS}), so what is stored restores.
 */
export function encodeStatements(statements: readonly string[]): Uint8Array {
  if (statements.length > MAX_STATEMENTS) {
    throw new Error(
      `Cannot store a change of ${statements.length} statements, over the limit of ` +
        `${MAX_STATEMENTS} a record can hold; please report this`,
    );
  }
  return encoder.encode(statements.join("\0"));
}

/**
 * Splits a change payload into its statements. Unchecked bytes (format 1 has no CRC) that
 * are not UTF-8 throw rather than turn into replacement characters; bytes that passed a CRC
 * came from TextEncoder, so they skip that check, which is several times slower on restore's
 * hot path. More than {@linkcode MAX_STATEMENTS} throw, before anything is split; readers
 * check first ({@linkcode tooManyStatements}) to say where.
 */
export function decodeStatements(payload: Uint8Array, checked = false): string[] {
  if (payload.length === 0) return [];
  if (tooManyStatements(payload)) {
    throw new Error(`Cannot read a change of more than ${MAX_STATEMENTS} statements`);
  }
  return (checked ? lenient : strict).decode(payload).split("\0");
}

export function encodeSnapshotEnd(totalBytes: number, parts: number): Uint8Array {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(totalBytes));
  view.setUint32(8, parts);
  return out;
}

/** A snapshot end's fields; `undefined` when the payload is not one. */
export function decodeSnapshotEnd(
  payload: Uint8Array,
): { totalBytes: number; parts: number } | undefined {
  if (payload.length !== 12) return undefined;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return { totalBytes: Number(view.getBigUint64(0)), parts: view.getUint32(8) };
}

export function encodeSeal(nextLog: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(nextLog));
  return out;
}

/** The sequence a seal names; `undefined` when the payload is not a seal's. */
export function decodeSeal(payload: Uint8Array): number | undefined {
  if (payload.length !== 8) return undefined;
  return Number(new DataView(payload.buffer, payload.byteOffset, 8).getBigUint64(0));
}
