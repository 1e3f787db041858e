/**
 * Wire protocol v2 (docs/PROTOCOL.md): v1's `u8 type, u32 length, payload` framing with a
 * CRC-32 of the whole frame after it, 64-bit versions, an authenticated hello, explicit
 * errors, and status, verify and file-by-file restore requests. Every v2 type is 0x10 or
 * above, so a server tells a v2 client from a v1 one by its first byte.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { concat } from "../bytes/concat.ts";
import { deflate } from "./deflate.ts";
import { inflate, InflateError } from "./inflate.ts";
import {
  changeBody,
  HEADER_BYTES,
  InflateLimitError,
  type Packet,
  splitStatements,
  WireError,
} from "./packets.ts";
import type { Framing } from "./packet_reader.ts";

export enum V2Type {
  Hello = 0x10,
  Challenge = 0x11,
  Auth = 0x12,
  Welcome = 0x13,
  Error = 0x14,
  Change = 0x15,
  Snapshot = 0x16,
  Rewind = 0x17,
  Ack = 0x18,
  ReqMetadata = 0x19,
  Metadata = 0x1a,
  Restore = 0x1b,
  File = 0x1c,
  Data = 0x1d,
  Done = 0x1e,
  Compact = 0x1f,
  CompactRes = 0x20,
  Status = 0x21,
  StatusRes = 0x22,
  Verify = 0x23,
  VerifyRes = 0x24,
  ReqPlace = 0x25,
  Place = 0x26,
  SealedChange = 0x27,
  SealedInit = 0x28,
  SealedBase = 0x29,
  SealedKey = 0x2a,
  SealedUpgrade = 0x2b,
  SnapshotFile = 0x2c,
  SealedInitFile = 0x2d,
  SealedKeyIf = 0x2e,
}

export const PROTOCOL_VERSION = 2;
export const MAGIC = new TextEncoder().encode("CLNB");
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
const TRAILER_BYTES = 4;
/** A DATA packet carries at most this much of a file. */
export const DATA_CHUNK_BYTES = 1 << 20;
/**
 * Bodies up to this size go uncompressed on a direct connection. Below it zlib saves no round
 * trip (TCP's initial window of ten segments carries the raw body in one flight) and few
 * bytes (11% on hex-heavy changes), yet costs both ends tens of microseconds on the hook's path.
 */
export const RAW_BODY_BYTES = 12 * 1024;
/**
 * Through a proxy (Tor) bytes cost more than that, and a relay that forwards in small reads
 * without TCP_NODELAY (microsocks) stalls each packet past its read size on a delayed ACK:
 * bodies past this size are compressed.
 */
export const PROXIED_RAW_BODY_BYTES = 512;

/** Why a server refused a request (ERROR's code). */
export enum ErrorCode {
  /** A packet failed its checksum or does not parse. */
  BadPacket = 1,
  /** No credential, a wrong one, or a node that does not exist. */
  Unauthorized = 2,
  /** A write that does not follow the backup, or a second writer. */
  Refused = 3,
  /** The server could not store it (disk full, I/O error). */
  Storage = 4,
  /** The node's quota is used up. */
  Quota = 5,
  /** Too many connections, too many failed authentications, too large a packet. */
  Limit = 6,
  /** A protocol version the server does not speak. */
  Version = 7,
  /** A compaction or verification failed. */
  Failed = 8,
  /**
   * A second writer, while the backup's writer is a connection of the node that heartbeats:
   * should it fall silent (its host gone), it is taken over, so the client may send again.
   */
  Busy = 9,
}

const TYPE_NAMES = new Map<number, string>(
  Object.entries(V2Type).filter(([, v]) => typeof v === "number").map((
    [k, v],
  ) => [v as number, k.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()]),
);

export function v2Name(type: number): string {
  return TYPE_NAMES.get(type) ?? `type 0x${type.toString(16).padStart(2, "0")}`;
}

/** PLACE: backup id (16), key id (8), u64 log, u64 offset. */
const PLACE_BYTES = 16 + 8 + 8 + 8;

/** The largest JSON answer (status, verify, compaction) and ERROR message. */
const JSON_LIMIT = 64 * 1024;

const FIXED: Partial<Record<V2Type, number>> = {
  [V2Type.Challenge]: 2 + NONCE_BYTES,
  [V2Type.Auth]: MAC_BYTES,
  [V2Type.Welcome]: MAC_BYTES + 24,
  [V2Type.Rewind]: 8,
  [V2Type.Ack]: 8,
  [V2Type.Metadata]: 24,
  [V2Type.Done]: 8,
  [V2Type.Place]: PLACE_BYTES,
  [V2Type.SealedBase]: 8,
  [V2Type.SnapshotFile]: 16,
};

/** v2 frames: a CRC-32 over type, length and payload follows each payload. */
export const V2_FRAMING: Framing = {
  limit(type, maxPayload) {
    switch (type) {
      case V2Type.Change:
      case V2Type.Snapshot:
      case V2Type.SealedChange:
      case V2Type.SealedInit:
        return maxPayload;
      case V2Type.SealedKey:
        return JSON_LIMIT;
      case V2Type.SealedKeyIf:
        return KEY_DIGEST_BYTES + JSON_LIMIT;
      case V2Type.SealedInitFile:
        return 4 + JSON_LIMIT + 8;
      case V2Type.SealedUpgrade:
        return 16 + JSON_LIMIT;
      case V2Type.Hello:
        return MAGIC.length + 3 + 255 + NONCE_BYTES;
      case V2Type.Data:
        return DATA_CHUNK_BYTES;
      case V2Type.File:
        return 8 + 255;
      case V2Type.Error:
      case V2Type.CompactRes:
      case V2Type.StatusRes:
      case V2Type.VerifyRes:
        return JSON_LIMIT;
    }
    return FIXED[type as V2Type] ?? 0;
  },
  name: v2Name,
  trailerBytes: TRAILER_BYTES,
  check(frame) {
    const body = frame.subarray(0, frame.length - TRAILER_BYTES);
    const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
    const stated = view.getUint32(frame.length - TRAILER_BYTES);
    if (crc32(body) !== stated) {
      throw new ChecksumError(`${v2Name(frame[0])} of ${body.length - HEADER_BYTES} bytes`);
    }
  },
};

/** v2 framing that takes only `types`: any other type may carry nothing. */
function framingOf(types: V2Type[]): Framing {
  const taken = new Set<number>(types);
  return { ...V2_FRAMING, limit: (type, max) => taken.has(type) ? V2_FRAMING.limit(type, max) : 0 };
}

/**
 * What a server reads before a client has proved its key: HELLO and AUTH only, so an
 * unauthenticated peer cannot make it buffer a CHANGE or SNAPSHOT of `--max-packet-bytes`.
 */
export const V2_HANDSHAKE_FRAMING: Framing = framingOf([V2Type.Hello, V2Type.Auth]);

/**
 * What a client reads: the packets a server sends, none of which carries more than 1 MiB, so
 * a server (or whoever answers before it proves the node's key) cannot make the node buffer
 * a CHANGE or SNAPSHOT of 1 GiB.
 */
export const V2_CLIENT_FRAMING: Framing = framingOf([
  V2Type.Challenge,
  V2Type.Welcome,
  V2Type.Error,
  V2Type.Ack,
  V2Type.Metadata,
  V2Type.File,
  V2Type.Data,
  V2Type.Done,
  V2Type.CompactRes,
  V2Type.StatusRes,
  V2Type.VerifyRes,
  V2Type.Place,
]);

/** A frame whose bytes do not match its checksum: damaged in transit, or forged. */
export class ChecksumError extends WireError {
  constructor(what: string) {
    super(`${what} fails its checksum`);
    this.name = "ChecksumError";
  }
}

/** One v2 frame, checksum included, as one buffer. */
export function encodeFrame(type: V2Type, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const frame = new Uint8Array(HEADER_BYTES + payload.length + TRAILER_BYTES);
  const view = new DataView(frame.buffer);
  view.setUint8(0, type);
  view.setUint32(1, payload.length);
  frame.set(payload, HEADER_BYTES);
  view.setUint32(HEADER_BYTES + payload.length, crc32(frame.subarray(0, -TRAILER_BYTES)));
  return frame;
}

/** Builds a payload from fixed-size numbers and byte strings, in order. */
class Writer {
  #parts: Uint8Array[] = [];

  u8(value: number): this {
    return this.bytes(Uint8Array.of(value));
  }
  u16(value: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, value);
    return this.bytes(b);
  }
  u32(value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value);
    return this.bytes(b);
  }
  u64(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new WireError(`${value} is not a whole number a v2 u64 carries`);
    }
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(value));
    return this.bytes(b);
  }
  bytes(value: Uint8Array): this {
    this.#parts.push(value);
    return this;
  }
  done(): Uint8Array {
    return concat(this.#parts);
  }
}

/** Reads a payload's fields in order; anything short or left over is a {@linkcode WireError}. */
export class FieldReader {
  #at = 0;
  #view: DataView;

  constructor(readonly payload: Uint8Array, readonly what: string) {
    this.#view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  }

  #take(n: number): number {
    if (this.#at + n > this.payload.length) {
      throw new WireError(`${this.what} of ${this.payload.length} bytes is cut short`);
    }
    const at = this.#at;
    this.#at += n;
    return at;
  }
  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }
  u16(): number {
    return this.#view.getUint16(this.#take(2));
  }
  u32(): number {
    return this.#view.getUint32(this.#take(4));
  }
  u64(): number {
    const value = this.#view.getBigUint64(this.#take(8));
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new WireError(`${this.what} carries ${value}, past 2^53`);
    }
    return Number(value);
  }
  bytes(n: number): Uint8Array {
    const at = this.#take(n);
    return this.payload.subarray(at, at + n);
  }
  rest(): Uint8Array {
    return this.bytes(this.payload.length - this.#at);
  }
  end(): void {
    if (this.#at !== this.payload.length) {
      throw new WireError(`${this.what} has ${this.payload.length - this.#at} bytes too many`);
    }
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function utf8(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new WireError(`${what} is not UTF-8`);
  }
}

export function packetOf(packet: Packet, type: V2Type): FieldReader {
  if (packet.type !== type) {
    throw new WireError(`expected ${v2Name(type)}, got ${v2Name(packet.type)}`);
  }
  return new FieldReader(packet.payload, v2Name(type));
}

/** The client's opening: protocol, node name, client nonce. */
export interface Hello {
  protocol: number;
  node: string;
  nonce: Uint8Array;
}

export function encodeHello(hello: Hello): Uint8Array {
  const name = encoder.encode(hello.node);
  if (name.length > 255) throw new WireError(`node name "${hello.node}" is over 255 bytes`);
  return encodeFrame(
    V2Type.Hello,
    new Writer().bytes(MAGIC).u16(hello.protocol).u8(name.length).bytes(name)
      .bytes(hello.nonce).done(),
  );
}

export function decodeHello(packet: Packet): Hello {
  const r = packetOf(packet, V2Type.Hello);
  const magic = r.bytes(MAGIC.length);
  if (!magic.every((b, i) => b === MAGIC[i])) throw new WireError("HELLO lacks its magic");
  const protocol = r.u16();
  const node = utf8(r.bytes(r.u8()), "HELLO's node name");
  const nonce = r.bytes(NONCE_BYTES).slice();
  r.end();
  return { protocol, node, nonce };
}

export function encodeChallenge(nonce: Uint8Array): Uint8Array {
  return encodeFrame(V2Type.Challenge, new Writer().u16(PROTOCOL_VERSION).bytes(nonce).done());
}

export function decodeChallenge(packet: Packet): { protocol: number; nonce: Uint8Array } {
  const r = packetOf(packet, V2Type.Challenge);
  const protocol = r.u16();
  const nonce = r.bytes(NONCE_BYTES).slice();
  r.end();
  return { protocol, nonce };
}

/** Where a backup stands: v1's METADATA with 64-bit fields. */
export interface V2Metadata {
  version: number;
  prevVersion: number;
  records: number;
}

function writeMetadata(w: Writer, m: V2Metadata): Writer {
  return w.u64(m.version).u64(m.prevVersion).u64(m.records);
}

function readMetadata(r: FieldReader): V2Metadata {
  return { version: r.u64(), prevVersion: r.u64(), records: r.u64() };
}

export function encodeWelcome(proof: Uint8Array, metadata: V2Metadata): Uint8Array {
  return encodeFrame(V2Type.Welcome, writeMetadata(new Writer().bytes(proof), metadata).done());
}

export function decodeWelcome(packet: Packet): { proof: Uint8Array; metadata: V2Metadata } {
  const r = packetOf(packet, V2Type.Welcome);
  const proof = r.bytes(MAC_BYTES).slice();
  const metadata = readMetadata(r);
  r.end();
  return { proof, metadata };
}

export function encodeMetadataV2(metadata: V2Metadata): Uint8Array {
  return encodeFrame(V2Type.Metadata, writeMetadata(new Writer(), metadata).done());
}

export function decodeMetadataV2(packet: Packet): V2Metadata {
  const r = packetOf(packet, V2Type.Metadata);
  const metadata = readMetadata(r);
  r.end();
  return metadata;
}

/** ACK, REWIND and DONE carry one version. */
export function encodeVersionFrame(
  type: V2Type.Ack | V2Type.Rewind | V2Type.Done,
  version: number,
): Uint8Array {
  return encodeFrame(type, new Writer().u64(version).done());
}

export function decodeVersionFrame(packet: Packet, type: V2Type): number {
  const r = packetOf(packet, type);
  const version = r.u64();
  r.end();
  return version;
}

/** A refusal: its code, the backup's version as it stands, and a line saying what to do. */
export interface V2Error {
  code: ErrorCode;
  version: number;
  message: string;
}

export function encodeError(error: V2Error): Uint8Array {
  let message = encoder.encode(error.message);
  if (message.length > 4096) message = message.subarray(0, 4096);
  return encodeFrame(
    V2Type.Error,
    new Writer().u16(error.code).u64(error.version).bytes(message).done(),
  );
}

export function decodeError(packet: Packet): V2Error {
  const r = packetOf(packet, V2Type.Error);
  const code = r.u16();
  const version = r.u64();
  const message = new TextDecoder().decode(r.rest());
  return { code, version, message };
}

/** A body goes raw (0) up to `rawUpTo` bytes, else zlib (1): any level decompresses the same. */
function packBody(
  body: Uint8Array,
  rawUpTo = RAW_BODY_BYTES,
): { encoding: number; bytes: Uint8Array } {
  if (body.length <= rawUpTo) return { encoding: 0, bytes: body };
  return { encoding: 1, bytes: deflate(body, 1) };
}

function unpackBody(r: FieldReader, maxBytes: number): Uint8Array {
  const encoding = r.u8();
  const bytes = r.rest();
  if (encoding === 0) {
    if (bytes.length <= maxBytes) return bytes;
    throw new InflateLimitError(
      `${r.what}'s body of ${bytes.length} bytes is over ${maxBytes}`,
      maxBytes,
    );
  }
  if (encoding !== 1) throw new WireError(`${r.what} has unknown encoding ${encoding}`);
  try {
    return inflate(bytes, maxBytes);
  } catch (error) {
    const message = `${r.what} does not decompress within ${maxBytes} bytes: ` +
      (error as Error).message;
    if (error instanceof InflateError && error.overLimit) {
      throw new InflateLimitError(message, maxBytes);
    }
    throw new WireError(message);
  }
}

/** A CHANGE's version, read before its body is inflated. */
export function changeVersionV2(packet: Packet): number {
  return packetOf(packet, V2Type.Change).u64();
}

/** A CHANGE, its body raw up to `rawUpTo` bytes ({@linkcode PROXIED_RAW_BODY_BYTES} via a proxy). */
export function encodeChangeV2(
  version: number,
  statements: readonly string[],
  rawUpTo = RAW_BODY_BYTES,
): Uint8Array {
  const { encoding, bytes } = packBody(changeBody(version, statements), rawUpTo);
  return encodeFrame(V2Type.Change, new Writer().u64(version).u8(encoding).bytes(bytes).done());
}

/**
 * A CHANGE's version and statements (no statements travel as one empty one, as in v1), and
 * `bytes`, the statements' UTF-8 length, joined.
 */
export function decodeChangeV2(
  packet: Packet,
  maxBytes: number,
): { version: number; statements: string[]; bytes: number } {
  const r = packetOf(packet, V2Type.Change);
  const version = r.u64();
  const body = unpackBody(r, maxBytes);
  const statements = splitStatements(
    body,
    utf8(body, `CHANGE ${version}'s statements`),
    `CHANGE ${version}`,
  );
  return { version, statements, bytes: body.length };
}

export function encodeSnapshotV2(version: number, database: Uint8Array): Uint8Array {
  const { encoding, bytes } = packBody(database);
  return encodeFrame(
    V2Type.Snapshot,
    new Writer().u64(version).u8(encoding).bytes(bytes).done(),
  );
}

export function decodeSnapshotV2(
  packet: Packet,
  maxBytes: number,
): { version: number; database: Uint8Array } {
  const r = packetOf(packet, V2Type.Snapshot);
  const version = r.u64();
  return { version, database: unpackBody(r, maxBytes) };
}

/**
 * SNAPSHOT_FILE: the database at `version`, deflated (zlib, as a SNAPSHOT's body), follows in
 * `size` bytes of DATA packets: `init`'s snapshot, never whole in memory at either end.
 */
export function encodeSnapshotFile(version: number, size: number): Uint8Array {
  return encodeFrame(V2Type.SnapshotFile, new Writer().u64(version).u64(size).done());
}

export function decodeSnapshotFile(packet: Packet): { version: number; size: number } {
  const r = packetOf(packet, V2Type.SnapshotFile);
  const version = r.u64();
  const size = r.u64();
  r.end();
  return { version, size };
}

/** RESTORE's FILE: the name of a backup file and its size; DATA packets follow. */
export function encodeFile(name: string, size: number): Uint8Array {
  return encodeFrame(V2Type.File, new Writer().u64(size).bytes(encoder.encode(name)).done());
}

export function decodeFile(packet: Packet): { name: string; size: number } {
  const r = packetOf(packet, V2Type.File);
  const size = r.u64();
  return { size, name: utf8(r.rest(), "FILE's name") };
}

/** COMPACT_RES, STATUS_RES and VERIFY_RES carry JSON. */
export function encodeJson(
  type: V2Type.CompactRes | V2Type.StatusRes | V2Type.VerifyRes,
  value: unknown,
): Uint8Array {
  return encodeFrame(type, encoder.encode(JSON.stringify(value)));
}

export function decodeJson<T>(packet: Packet, type: V2Type): T {
  const r = packetOf(packet, type);
  try {
    return JSON.parse(utf8(r.rest(), v2Name(type))) as T;
  } catch (error) {
    if (error instanceof WireError) throw error;
    throw new WireError(`${v2Name(type)} is not JSON`);
  }
}

/**
 * Where an encrypted backup's next record goes (PLACE): the backup's id, its key id (all
 * zero for a plain backup), the live log and the end of its valid records.
 */
export interface Place {
  /** The backup's id. */
  backupId: Uint8Array;
  /** The id of the key its segments name; `undefined` for a plain backup. */
  keyId: Uint8Array | undefined;
  /** The sequence number of the live log. */
  log: number;
  /** The end of the live log's valid records, where the next one goes. */
  offset: number;
}

export function encodePlace(place: Place): Uint8Array {
  return encodeFrame(
    V2Type.Place,
    new Writer().bytes(place.backupId).bytes(place.keyId ?? new Uint8Array(8))
      .u64(place.log).u64(place.offset).done(),
  );
}

export function decodePlace(packet: Packet): Place {
  const r = packetOf(packet, V2Type.Place);
  const backupId = r.bytes(16).slice();
  const keyId = r.bytes(8).slice();
  const log = r.u64();
  const offset = r.u64();
  r.end();
  return { backupId, keyId: keyId.some(Boolean) ? keyId : undefined, log, offset };
}

/**
 * SEALED_CHANGE: a change record the client sealed for `offset` of log `log`; with `seal`,
 * the seal record that ends that log there, the change then being laid out at the start of
 * log `log + 1`.
 */
export interface SealedChange {
  /** The sequence number of the live log the record is laid out for. */
  log: number;
  /** Where in that log it goes. */
  offset: number;
  /** The seal record that ends log `log` at `offset`, when the client rolls. */
  seal: Uint8Array | undefined;
  /** The sealed change record. */
  record: Uint8Array;
}

export function encodeSealedChange(change: SealedChange): Uint8Array {
  const seal = change.seal ?? new Uint8Array(0);
  return encodeFrame(
    V2Type.SealedChange,
    new Writer().u64(change.log).u64(change.offset).u32(seal.length).bytes(seal)
      .bytes(change.record).done(),
  );
}

export function decodeSealedChange(packet: Packet): SealedChange {
  const r = packetOf(packet, V2Type.SealedChange);
  const log = r.u64();
  const offset = r.u64();
  const seal = r.bytes(r.u32());
  return { log, offset, seal: seal.length > 0 ? seal : undefined, record: r.rest() };
}

/** SEALED_INIT: `key.json`, then the sealed base segment (none: an empty backup). */
export function encodeSealedInit(wrappedKey: Uint8Array, base: Uint8Array): Uint8Array {
  return encodeFrame(
    V2Type.SealedInit,
    new Writer().u32(wrappedKey.length).bytes(wrappedKey).bytes(base).done(),
  );
}

export function decodeSealedInit(packet: Packet): { wrappedKey: Uint8Array; base: Uint8Array } {
  const r = packetOf(packet, V2Type.SealedInit);
  const wrappedKey = r.bytes(r.u32());
  return { wrappedKey, base: r.rest() };
}

/**
 * SEALED_INIT_FILE: SEALED_INIT with its base (`size` bytes; none when 0) in DATA packets that
 * follow, not in the packet: `init --encrypt`'s base, never whole in memory at either end.
 */
export function encodeSealedInitFile(wrappedKey: Uint8Array, size: number): Uint8Array {
  return encodeFrame(
    V2Type.SealedInitFile,
    new Writer().u32(wrappedKey.length).bytes(wrappedKey).u64(size).done(),
  );
}

export function decodeSealedInitFile(packet: Packet): { wrappedKey: Uint8Array; size: number } {
  const r = packetOf(packet, V2Type.SealedInitFile);
  const wrappedKey = r.bytes(r.u32());
  const size = r.u64();
  r.end();
  return { wrappedKey, size };
}

/** SEALED_BASE: the size of the sealed base segment whose bytes follow in DATA packets. */
export function encodeSealedBase(size: number): Uint8Array {
  return encodeFrame(V2Type.SealedBase, new Writer().u64(size).done());
}

export function decodeSealedBase(packet: Packet): number {
  const r = packetOf(packet, V2Type.SealedBase);
  const size = r.u64();
  r.end();
  return size;
}

/** SEALED_KEY_IF's digest of a `key.json`: its SHA-256. */
export function keyDigest(wrappedKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(wrappedKey).digest());
}
const KEY_DIGEST_BYTES = 32;

/**
 * SEALED_KEY_IF: SEALED_KEY's new `key.json`, to be taken only if the server's is still the
 * one the node read, whose {@linkcode keyDigest} is `read`.
 */
export interface SealedKeyIf {
  read: Uint8Array;
  wrappedKey: Uint8Array;
}

export function encodeSealedKeyIf(rekey: SealedKeyIf): Uint8Array {
  return encodeFrame(
    V2Type.SealedKeyIf,
    new Writer().bytes(rekey.read).bytes(rekey.wrappedKey).done(),
  );
}

export function decodeSealedKeyIf(packet: Packet): SealedKeyIf {
  const r = packetOf(packet, V2Type.SealedKeyIf);
  return { read: r.bytes(KEY_DIGEST_BYTES).slice(), wrappedKey: r.rest() };
}

/**
 * SEALED_UPGRADE: the node's encrypted copy of its plain backup follows (FILE and DATA for
 * each segment, then DONE), made from the backup at `version`, `bytes` in all; `wrappedKey`
 * is its `key.json`, naming its backup id and key id.
 */
export interface SealedUpgrade {
  version: number;
  bytes: number;
  wrappedKey: Uint8Array;
}

export function encodeSealedUpgrade(upgrade: SealedUpgrade): Uint8Array {
  return encodeFrame(
    V2Type.SealedUpgrade,
    new Writer().u64(upgrade.version).u64(upgrade.bytes).bytes(upgrade.wrappedKey).done(),
  );
}

export function decodeSealedUpgrade(packet: Packet): SealedUpgrade {
  const r = packetOf(packet, V2Type.SealedUpgrade);
  return { version: r.u64(), bytes: r.u64(), wrappedKey: r.rest() };
}
