/**
 * Segment files of the cln-backup format: a 32-byte header, then records (see docs/FORMAT.md).
 *
 * {@linkcode scanSegment} reads a segment front to back, checking every record, and tells a
 * torn tail (what a crash mid-append leaves) from damage elsewhere, which it refuses.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import {
  decodeRecordHeader,
  headerFields,
  isSealed,
  MAX_PAYLOAD_BYTES,
  MAX_STATEMENTS,
  oversized,
  payloadChecks,
  rawPayload,
  RECORD_HEADER_SIZE,
  type RecordCipher,
  type RecordHeader,
  RecordKind,
  tooManyStatements,
  unknownCodec,
} from "./record.ts";
import { recordWithin } from "./record_search.ts";
import type { KeptBuffer, ReusedBuffer } from "../fs/kept_buffer.ts";
import { readFull } from "../fs/read_full.ts";
import { cliCommand } from "../fs/advised_command.ts";

export const SEGMENT_HEADER_SIZE = 64;
export const FORMAT_VERSION = 3;
/** Bytes of the random id that every segment of one backup carries. */
export const BACKUP_ID_SIZE = 16;
const MAGIC = new Uint8Array([0x89, 0x43, 0x4c, 0x4e, 0x42, 0x41, 0x4b, 0x0a]); // "\x89CLNBAK\n"
/** Bytes of the id of the key that seals an encrypted backup's records. */
export const KEY_ID_SIZE = 8;
const CRC_AT = SEGMENT_HEADER_SIZE - 4;
const FLAGS_AT = 48;
const KEY_ID_AT = 52;
/** Segment flag: its records are sealed (encrypted and authenticated) with the key `keyId` names. */
const SEALED = 1;
/**
 * Segment flag of a sealed base: its records bind its `firstLog` too (lib/crypto/record_cipher.ts).
 * A flag, not a new format, so that bases sealed before it still open; cleared or set by hand,
 * the records no longer open.
 */
const FIRST_LOG_BOUND = 2;

/** A log segment holds changes; a base segment holds one snapshot. */
export const SegmentKind = { Log: 1, Base: 2 } as const;
export type SegmentKind = typeof SegmentKind[keyof typeof SegmentKind];

export interface SegmentHeader {
  kind: SegmentKind;
  /** Log segments: their sequence number. Base segments: the snapshot's version. */
  number: number;
  /** The backup's identity: the same random bytes in every segment of one backup. */
  backupId: Uint8Array;
  /** Base segments: the sequence of the log that holds the changes after it. Logs: 0. */
  firstLog: number;
  /**
   * An encrypted backup's segments: the id of the key that seals every record (see
   * lib/crypto/data_key.ts); `undefined` in a plain backup.
   */
  keyId?: Uint8Array;
  /** A sealed base whose records bind `firstLog` (every one written since they do). */
  firstLogBound?: boolean;
}

/**
 * A backup file of format 2, written by a development version before backups had an identity,
 * which this version neither reads nor appends to. The plugin, which knows the node's set-up,
 * says the init to run whole ({@linkcode FormatTwoError.what}).
 */
export class FormatTwoError extends Error {
  /** What the file is, as in `"…/log-1.clnb" has format 2, …`. */
  readonly what: string;

  constructor(readonly path: string) {
    const what = `"${path}" has format 2, written by a development version of cln-backup ` +
      `before backups had an identity; this one reads format ${FORMAT_VERSION}`;
    super(
      `Cannot read backup: ${what}: restore it with the version that wrote it, then move the ` +
        `node's backup.lock aside and run ` +
        `"${cliCommand("init", "--lightning-dir DIR <new url>")}" for a new backup`,
    );
    this.what = what;
    this.name = "FormatTwoError";
  }
}

/** A backup file that is damaged where a crash cannot have damaged it, or missing. */
export class CorruptBackupError extends Error {
  /** What and where, as in `a torn record at offset 40 of "…/log-1.clnb"`. */
  readonly where: string;

  /** `offset` is `undefined` when the problem is the file itself (missing, foreign, not a file). */
  constructor(
    readonly path: string,
    readonly offset: number | undefined,
    readonly what: string,
  ) {
    const where = `${what} ${offset === undefined ? "at" : `at offset ${offset} of`} "${path}"`;
    super(
      `Cannot read backup: ${where}; the backup is damaged: restore from another copy, or ` +
        `init a new backup from the node's database`,
    );
    this.where = where;
    this.name = "CorruptBackupError";
  }
}

/** A new random backup identity. */
export function newBackupId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(BACKUP_ID_SIZE));
}

export function formatBackupId(id: Uint8Array): string {
  return Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function encodeSegmentHeader(header: SegmentHeader): Uint8Array {
  const out = new Uint8Array(SEGMENT_HEADER_SIZE);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, FORMAT_VERSION);
  view.setUint32(12, header.kind);
  view.setBigUint64(16, BigInt(header.number));
  out.set(header.backupId, 24);
  view.setBigUint64(40, BigInt(header.firstLog));
  if (header.keyId) {
    view.setUint32(FLAGS_AT, SEALED | (header.firstLogBound ? FIRST_LOG_BOUND : 0));
    out.set(header.keyId, KEY_ID_AT);
  }
  view.setUint32(CRC_AT, crc32(out.subarray(0, CRC_AT)));
  return out;
}

/** True when the bytes start like a cln-backup segment of any format version. */
export function hasSegmentMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

export function decodeSegmentHeader(bytes: Uint8Array, path: string): SegmentHeader {
  if (bytes.length < 12 || !hasSegmentMagic(bytes)) {
    throw new CorruptBackupError(path, 0, "missing segment header");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = view.getUint32(8);
  if (format === 2) throw new FormatTwoError(path);
  if (bytes.length < SEGMENT_HEADER_SIZE) {
    throw new CorruptBackupError(path, 0, "missing segment header");
  }
  if (view.getUint32(CRC_AT) !== crc32(bytes.subarray(0, CRC_AT))) {
    throw new CorruptBackupError(path, 0, "segment header checksum mismatch");
  }
  if (format !== FORMAT_VERSION) {
    throw new Error(
      `Cannot read backup: "${path}" has format ${format}, this cln-backup reads format ` +
        `${FORMAT_VERSION}: upgrade cln-backup`,
    );
  }
  const kind = view.getUint32(12);
  if (kind !== SegmentKind.Log && kind !== SegmentKind.Base) {
    throw new CorruptBackupError(path, 12, `unknown segment kind ${kind}`);
  }
  const flags = view.getUint32(FLAGS_AT);
  if ((flags & ~(SEALED | FIRST_LOG_BOUND)) !== 0) {
    throw new Error(
      `Cannot read backup: "${path}" has segment flags ${flags}, which this cln-backup does ` +
        `not know: upgrade cln-backup`,
    );
  }
  const keyId = bytes.slice(KEY_ID_AT, KEY_ID_AT + KEY_ID_SIZE);
  const firstLog = Number(view.getBigUint64(40));
  const bound = (flags & FIRST_LOG_BOUND) !== 0;
  if (
    (kind === SegmentKind.Log) !== (firstLog === 0) ||
    ((flags & SEALED) === 0 && keyId.some(Boolean)) ||
    (bound && ((flags & SEALED) === 0 || kind !== SegmentKind.Base))
  ) {
    throw new CorruptBackupError(path, 40, "segment header fields out of range");
  }
  return {
    kind: kind as SegmentKind,
    number: Number(view.getBigUint64(16)),
    backupId: bytes.slice(24, 24 + BACKUP_ID_SIZE),
    firstLog,
    ...(flags & SEALED ? { keyId } : {}),
    ...(bound ? { firstLogBound: true } : {}),
  };
}

/** One checked record as read from a segment. */
export interface SegmentRecord {
  offset: number;
  header: RecordHeader;
  /** The raw (decompressed) payload; `undefined` when the scan was asked not to decode. */
  payload: Uint8Array | undefined;
}

/** Where the valid records of a segment end, and whether a torn tail was cut there. */
export interface SegmentTail {
  /** Offset just past the last valid record. */
  end: number;
  /** Bytes after `end` that a crash left behind (0 when the segment ends cleanly). */
  tornBytes: number;
}

/** Reads a whole file region synchronously; shorter only at end of file. */
export function readAt(file: Deno.FsFile, offset: number, length: number): Uint8Array {
  return readInto(file, offset, new Uint8Array(length));
}

/** Fills `out` from `offset` on; the part filled, shorter only at end of file. */
export function readInto(file: Deno.FsFile, offset: number, out: Uint8Array): Uint8Array {
  file.seekSync(offset, Deno.SeekMode.Start);
  const filled = readFull(file, out);
  return filled === out.length ? out : out.subarray(0, filled);
}

/**
 * The most zeros a segment can end in: a writer zeros up to 1 MiB past the record it
 * appends (writer.ts), and a file system may grow a file by the append before its bytes
 * land, so a crash leaves at most one record's bytes and 1 MiB; this leaves room to spare.
 */
export const MOST_ZERO_BYTES = MAX_PAYLOAD_BYTES + (16 << 20);

/**
 * Where the bytes of `file` (at `path`) from `from` to `to` stop being followed by zeros
 * only: just after the last one that is not zero, or `from` when they all are. More than
 * {@linkcode MOST_ZERO_BYTES} zeros at the end are no writer's (a file grown, or made
 * sparse, to terabytes would take hours to read): {@linkcode CorruptBackupError}.
 */
export function dataEnd(file: Deno.FsFile, from: number, to: number, path: string): number {
  const step = FIRST_WINDOW_BYTES;
  for (let end = to; end > from; end -= step) {
    if (to - end > MOST_ZERO_BYTES) {
      throw new CorruptBackupError(
        path,
        end,
        `more than ${MOST_ZERO_BYTES} zero bytes up to the end of the file (${to} bytes), ` +
          `more than any write leaves (a file grown, or damaged),`,
      );
    }
    const start = Math.max(from, end - step);
    const bytes = readAt(file, start, end - start);
    for (let i = bytes.length - 1; i >= 0; i--) if (bytes[i] !== 0) return start + i + 1;
  }
  return from;
}

/**
 * Times a scan reads a record again, fresh, before it calls it damage. A live log is written
 * while others read it, into zeros written ahead (writer.ts): a read can see a record's
 * start still zero and, a moment later, its end (or the next record) written. The writer
 * writes front to back, so bytes seen written mean the bytes before them are final: a fresh
 * read after that sees the record whole, unless the writer is still on it.
 */
const RECHECKS = 3;

/** Bytes a scan reads at once: one read serves many small records. */
const WINDOW_BYTES = 4 << 20;
/**
 * A scan's first read: a live log is mostly the zeros written ahead of its records, which a
 * window of the file's size would read (and hold) whole, for every connection of a server.
 */
const FIRST_WINDOW_BYTES = 64 << 10;

/**
 * Serves reads from a window of the file, so a scan makes one read per window. The window's
 * buffer is reused (across segments too, when the caller hands one in), so a scan's memory
 * does not grow with the backup.
 */
class ReadWindow {
  #buffer: Uint8Array | undefined;
  #bytes: Uint8Array = new Uint8Array(0);
  #start = 0;
  /** The next window's size: it grows as a scan goes on, up to WINDOW_BYTES. */
  #next = FIRST_WINDOW_BYTES;

  constructor(
    readonly file: Deno.FsFile,
    readonly size: number,
    readonly shared?: ScanBuffer,
  ) {}

  /** Drops what was read: the next read is fresh. */
  forget(): void {
    this.#bytes = new Uint8Array(0);
  }

  /** The bytes at `offset`; a view valid until the next call. */
  at(offset: number, length: number): Uint8Array {
    const end = offset + length;
    if (offset < this.#start || end > this.#start + this.#bytes.length) {
      const wanted = Math.min(this.#next, this.size);
      if (!this.#buffer || this.#buffer.length < wanted) {
        this.#buffer = this.shared?.for(wanted) ?? new Uint8Array(wanted);
      }
      this.#next = Math.min(WINDOW_BYTES, this.#next * 4);
      if (length > this.#buffer.length) return readAt(this.file, offset, length);
      this.#start = offset;
      this.#bytes = readInto(
        this.file,
        offset,
        this.#buffer.subarray(0, Math.min(this.#buffer.length, this.size - offset)),
      );
    }
    return this.#bytes.subarray(offset - this.#start, end - this.#start);
  }
}

/**
 * A read buffer that the scans of many segments share (they run one after another), grown
 * to the largest one's window: a scan of many small logs allocates no more than they hold.
 */
export class ScanBuffer {
  #bytes = new Uint8Array(0);

  /** The buffer, at least `size` bytes long up to the window's size. */
  for(size: number): Uint8Array {
    const wanted = Math.min(WINDOW_BYTES, size);
    if (this.#bytes.length < wanted) this.#bytes = new Uint8Array(wanted);
    return this.#bytes;
  }
}

/** How {@linkcode scanSegment} reads a segment. */
export interface ScanOptions {
  /** Decode (open and decompress) every payload; seals are decoded when they can be anyway. */
  decode: boolean;
  /** Whether the segment's records are sealed (its header's `keyId`). */
  sealed?: boolean;
  /** Opens sealed records; without it, a sealed payload is not decoded (status, keyless). */
  cipher?: RecordCipher;
  /** Where to read into, shared with other scans; one of the scan's own by default. */
  buffer?: ScanBuffer;
  /**
   * Where to decode payloads, when each is passed on before the next record is read: each
   * then holds until then. A new buffer each by default.
   */
  payloads?: KeptBuffer;
}

/**
 * Reads every record of an open segment file, checking each.
 *
 * A crash while appending can leave only the last record damaged (each append is synced
 * before the next starts): a record whose checked header runs past the end of the file,
 * whose payload fails its check with nothing but zeros after it, or a header that is short
 * or fails its check with no whole record after it, then zeros (an append into zeros can
 * lose its first page and keep later ones). Such a tail is reported in the returned
 * {@linkcode SegmentTail}, never yielded. Zeros from a record's start to the end of the file
 * are no record at all: the segment ends there. Anything else that fails a check
 * throws {@linkcode CorruptBackupError}. The checks come before any decryption, so a torn
 * tail of an encrypted log is told from damage as in a plain one.
 */
export function* scanSegment(
  file: Deno.FsFile,
  path: string,
  options: ScanOptions = { decode: true },
): Generator<SegmentRecord, SegmentTail, void> {
  let size = file.statSync().size;
  let window = new ReadWindow(file, size, options.buffer);
  let offset = SEGMENT_HEADER_SIZE;
  let rechecks = 0;
  const into = options.payloads?.for;
  // The writer grows a live log with zeros before it writes a record into them: a record the
  // scan finds cut by the size it began with is read again in the file as it is now.
  const grew = (): boolean => {
    const now = file.statSync().size;
    if (now <= size || rechecks++ >= RECHECKS) return false;
    size = now;
    window = new ReadWindow(file, size, options.buffer);
    return true;
  };
  while (offset < size) {
    const remaining = size - offset;
    const headerBytes = window.at(offset, Math.min(RECORD_HEADER_SIZE, remaining));
    const header = decodeRecordHeader(headerBytes);
    if (!header) {
      // Zeros to the end are where no record was ever written: the space the writer zeroed
      // ahead of its records (writer.ts), or that a file system grew before an append landed.
      // Torn when nothing but this header's slot holds data. Torn bytes end at the last one
      // that is not zero.
      const data = dataEnd(file, offset, size, path);
      if (data === offset) return { end: offset, tornBytes: 0 };
      if (data <= offset + RECORD_HEADER_SIZE) {
        if (remaining < RECORD_HEADER_SIZE && grew()) continue;
        return { end: offset, tornBytes: data - offset };
      }
      if (rechecks++ < RECHECKS) {
        window.forget();
        continue;
      }
      // An append into zeros lands page by page: a power cut can keep its later pages and
      // lose the one with its header. Torn, unless a whole record follows (then this one was
      // whole once, and is damaged) or the bytes are more than one record could hold.
      if (
        data - offset <= RECORD_HEADER_SIZE + MAX_PAYLOAD_BYTES &&
        !recordWithin((at, out) => readInto(file, at, out), offset + 1, data)
      ) {
        return { end: offset, tornBytes: data - offset };
      }
      throw new CorruptBackupError(path, offset, "record header checksum mismatch");
    }
    const unknown = unknownCodec(header);
    if (unknown) {
      throw new Error(
        `Cannot read backup: ${unknown}, at offset ${offset} of "${path}": upgrade cln-backup`,
      );
    }
    // Checked before anything is allocated: a length no writer wrote is damage, never a tail.
    const tooLarge = oversized(header);
    if (tooLarge) throw new CorruptBackupError(path, offset, tooLarge);
    if (isSealed(header.codec) !== (options.sealed ?? false)) {
      throw new CorruptBackupError(
        path,
        offset,
        options.sealed ? "a plain record in an encrypted segment" : "an encrypted record " +
          "in a plain segment",
      );
    }
    const end = offset + RECORD_HEADER_SIZE + header.storedLength;
    if (end > size) {
      if (grew()) continue;
      return { end: offset, tornBytes: dataEnd(file, offset, size, path) - offset };
    }
    const stored = window.at(offset + RECORD_HEADER_SIZE, header.storedLength);
    if (!payloadChecks(header, stored)) {
      const data = dataEnd(file, offset, size, path);
      if (data <= end) return { end: offset, tornBytes: data - offset };
      if (rechecks++ < RECHECKS) {
        window.forget();
        continue;
      }
      throw new CorruptBackupError(path, offset, "record payload checksum mismatch");
    }
    let payload: Uint8Array | undefined;
    // A seal is always decoded when it can be: the chain of logs rests on what it names.
    const decode = options.decode || header.kind === RecordKind.Seal;
    if (decode && (options.cipher || !options.sealed)) {
      payload = decodePayload(header, stored, offset, path, options.cipher, into);
      // A raw payload is a view of the window, which the next read reuses.
      if (payload.buffer === stored.buffer) {
        payload = into ? copyInto(into(payload.length), payload) : payload.slice();
      }
    } else if (options.decode) {
      // Readers check the key against the chain first (lib/backends/file/encryption.ts).
      throw new Error(`Cannot read backup: "${path}" is encrypted and no key was given to open it`);
    }
    yield { offset, header, payload };
    offset = end;
    rechecks = 0;
  }
  return { end: offset, tornBytes: 0 };
}

function copyInto(buffer: Uint8Array, bytes: Uint8Array): Uint8Array {
  buffer.set(bytes);
  return buffer.subarray(0, bytes.length);
}

function decodePayload(
  header: RecordHeader,
  stored: Uint8Array,
  offset: number,
  path: string,
  cipher: RecordCipher | undefined,
  into: ReusedBuffer | undefined,
): Uint8Array {
  let plain: Uint8Array | undefined = stored;
  if (cipher) {
    plain = cipher.open(headerFields(header), offset, stored);
    if (!plain) {
      throw new CorruptBackupError(
        path,
        offset,
        "a record that fails authentication (changed, moved, or from another backup)",
      );
    }
  }
  const raw = rawPayload(header, plain, into);
  if (!raw) throw new CorruptBackupError(path, offset, "record payload does not decode");
  if (header.kind === RecordKind.Change && tooManyStatements(raw)) {
    throw new CorruptBackupError(
      path,
      offset,
      `a change of more than ${MAX_STATEMENTS} statements`,
    );
  }
  return raw;
}
