/**
 * Wire protocol v1 of the Python backup plugin: `u8 type, u32 length, payload`, big-endian
 * (see ../shared/DESIGN.md section 6). Each packet is encoded as one buffer, so it goes out
 * in one write.
 *
 * @module
 */
import { deflate } from "./deflate.ts";
import { inflate, InflateError } from "./inflate.ts";
import { MAX_PAYLOAD_BYTES, MAX_STATEMENTS, tooManyStatements } from "../format/record.ts";

export enum PacketType {
  Change = 0x01,
  Snapshot = 0x02,
  Rewind = 0x03,
  ReqMetadata = 0x04,
  Restore = 0x05,
  Ack = 0x06,
  Nack = 0x07,
  Metadata = 0x08,
  Done = 0x09,
  Compact = 0x0a,
  CompactRes = 0x0b,
}

export const HEADER_BYTES = 5;

/** A packet as framed on the wire. */
export interface Packet {
  type: number;
  payload: Uint8Array;
}

/** The stream broke the protocol: the connection cannot go on. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

/** The name of a packet type, for log lines. */
export function packetName(type: number): string {
  return PacketType[type]?.toUpperCase() ?? `type 0x${type.toString(16).padStart(2, "0")}`;
}

/** A packet's header: its type, and the length of the payload after it. */
export function encodeHeader(type: PacketType, payloadLength: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, type);
  view.setUint32(1, payloadLength);
  return bytes;
}

export function encodePacket(
  type: PacketType,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + payload.length);
  bytes.set(encodeHeader(type, payload.length));
  bytes.set(payload, HEADER_BYTES);
  return bytes;
}

/** A version as wire v1's `u32`; one that does not fit is a {@linkcode WireError}. */
export function u32(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new WireError(`version ${value} does not fit wire v1's u32`);
  }
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

/**
 * A CHANGE or SNAPSHOT body that inflates (or, raw, is) past the limit it was decoded within:
 * nothing past the limit was inflated.
 */
export class InflateLimitError extends WireError {
  constructor(message: string, readonly limit: number) {
    super(message);
    this.name = "InflateLimitError";
  }
}

function readU32(payload: Uint8Array, what: string): number {
  if (payload.length < 4) throw new WireError(`${what} is ${payload.length} bytes, under 4`);
  return new DataView(payload.buffer, payload.byteOffset, payload.length).getUint32(0);
}

/** ACK, NACK and REWIND carry one version and nothing else. */
export function encodeVersionPacket(
  type: PacketType.Ack | PacketType.Nack | PacketType.Rewind,
  version: number,
): Uint8Array {
  return encodePacket(type, u32(version));
}

export function decodeVersion(packet: Packet): number {
  if (packet.payload.length !== 4) {
    throw new WireError(`${packetName(packet.type)} of ${packet.payload.length} bytes, not 4`);
  }
  return readU32(packet.payload, packetName(packet.type));
}

/** METADATA's payload; `protocol` is 1 in every v1 server. */
export interface Metadata {
  /** The backup protocol the server speaks. */
  protocol: number;
  /** The version of the backup's last record. */
  version: number;
  /** The version before its last change; 0 when it cannot be rewound. */
  prevVersion: number;
  /** How many records the server says the backup holds. */
  versionCount: number;
}

export const METADATA_BYTES = 20;

export function encodeMetadata(metadata: Omit<Metadata, "protocol">): Uint8Array {
  const payload = new Uint8Array(METADATA_BYTES);
  const view = new DataView(payload.buffer);
  view.setUint32(0, 1);
  view.setUint32(4, metadata.version);
  view.setUint32(8, metadata.prevVersion);
  view.setBigUint64(12, BigInt(metadata.versionCount));
  return encodePacket(PacketType.Metadata, payload);
}

export function decodeMetadata(packet: Packet): Metadata {
  if (packet.payload.length !== METADATA_BYTES) {
    throw new WireError(`METADATA of ${packet.payload.length} bytes, not ${METADATA_BYTES}`);
  }
  const view = new DataView(packet.payload.buffer, packet.payload.byteOffset, METADATA_BYTES);
  return {
    protocol: view.getUint32(0),
    version: view.getUint32(4),
    prevVersion: view.getUint32(8),
    versionCount: Number(view.getBigUint64(12)),
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Statements joined by NUL, as the Python plugin sends them (no statements: empty). */
function joinStatements(statements: readonly string[]): Uint8Array {
  return encoder.encode(statements.join("\0"));
}

/**
 * A CHANGE's statements joined, refused when a record could not hold them: the server would
 * not inflate them (lib/server/inflate_budget.ts), nor could it store them.
 */
export function changeBody(version: number, statements: readonly string[]): Uint8Array {
  const body = joinStatements(statements);
  if (body.length > MAX_PAYLOAD_BYTES) {
    throw new Error(
      `Cannot send version ${version}: its statements take ${body.length} bytes, over the ` +
        `${MAX_PAYLOAD_BYTES} a record can hold; please report this`,
    );
  }
  return body;
}

/**
 * zlib's default level, as the Python plugin compresses; any level decompresses the same, so
 * a bulk sender may trade size for speed.
 */
const DEFAULT_LEVEL = 6;
/** The fastest level, for a restore's stream: its bytes cross the wire once and are gone. */
export const FAST_LEVEL = 1;

function compressed(version: number, body: Uint8Array, level: number): Uint8Array {
  const packed = deflate(body, level);
  const payload = new Uint8Array(4 + packed.length);
  payload.set(u32(version));
  payload.set(packed, 4);
  return payload;
}

function decompressed(packet: Packet, maxBytes: number): { version: number; body: Uint8Array } {
  const version = readU32(packet.payload, packetName(packet.type));
  try {
    return { version, body: inflate(packet.payload.subarray(4), maxBytes) };
  } catch (error) {
    const message = `${packetName(packet.type)} ${version} does not decompress within ` +
      `${maxBytes} bytes: ${(error as Error).message}`;
    if (error instanceof InflateError && error.overLimit) {
      throw new InflateLimitError(message, maxBytes);
    }
    throw new WireError(message);
  }
}

/** A CHANGE's version, read before its body is inflated. */
export function changeVersion(packet: Packet): number {
  return readU32(packet.payload, packetName(packet.type));
}

export function encodeChange(
  version: number,
  statements: readonly string[],
  level = DEFAULT_LEVEL,
): Uint8Array {
  return encodePacket(
    PacketType.Change,
    compressed(version, changeBody(version, statements), level),
  );
}

/**
 * A CHANGE's version and statements, and `bytes`, the statements' UTF-8 length, joined. Split
 * on NUL as the Python server does, so a change with no statements arrives as one empty one.
 */
export function decodeChange(
  packet: Packet,
  maxBytes: number,
): { version: number; statements: string[]; bytes: number } {
  const { version, body } = decompressed(packet, maxBytes);
  let text: string;
  try {
    text = decoder.decode(body);
  } catch {
    throw new WireError(`CHANGE ${version} holds statements that are not UTF-8`);
  }
  return {
    version,
    statements: splitStatements(body, text, `CHANGE ${version}`),
    bytes: body.length,
  };
}

/**
 * `text`, decoded from `body`, split on NUL; more than {@linkcode MAX_STATEMENTS} (counted in
 * `body`) is a {@linkcode WireError}, before the split.
 */
export function splitStatements(body: Uint8Array, text: string, what: string): string[] {
  // One packet of 130 KB deflated NULs would otherwise abort the server and every node's backup.
  if (tooManyStatements(body)) {
    throw new WireError(`${what} carries more than ${MAX_STATEMENTS} statements`);
  }
  return text.split("\0");
}

export function encodeSnapshot(
  version: number,
  database: Uint8Array,
  level = DEFAULT_LEVEL,
): Uint8Array {
  return encodePacket(PacketType.Snapshot, compressed(version, database, level));
}

/**
 * The start of a SNAPSHOT whose database, deflated, is `packedBytes` long and follows as it is:
 * the header and the version. Wire v1's length is a u32: a database that deflates past it goes
 * over wire v2.
 */
export function encodeSnapshotHead(version: number, packedBytes: number): Uint8Array {
  const length = 4 + packedBytes;
  if (length > 0xffffffff) {
    throw new WireError(
      `a snapshot of ${packedBytes} compressed bytes does not fit wire v1's u32 length: ` +
        `use wire v2 (a server root and a node's key)`,
    );
  }
  const head = new Uint8Array(HEADER_BYTES + 4);
  head.set(encodeHeader(PacketType.Snapshot, length));
  head.set(u32(version), HEADER_BYTES);
  return head;
}

export function decodeSnapshot(
  packet: Packet,
  maxBytes: number,
): { version: number; database: Uint8Array } {
  const { version, body } = decompressed(packet, maxBytes);
  return { version, database: body };
}

/** What a compaction reports: sizes before and after, and any fields a server adds. */
export interface CompactStats {
  /** The backup's size and records before the compaction. */
  before: { backupsize: number; version_count: number };
  /** Its size and records after. */
  after: { version_count: number; backupsize: number };
  /** Any other field the server sends. */
  [field: string]: unknown;
}

/**
 * COMPACT_RES as Python's `json.dumps` writes it: `", "` and `": "` separators, `before` and
 * `after` first, then the other fields.
 */
export function encodeCompactResult(stats: CompactStats): Uint8Array {
  const { before, after, ...more } = stats;
  const extra = Object.entries(more).map(([key, value]) =>
    `, ${JSON.stringify(key)}: ` +
    JSON.stringify(value)
  );
  const text = `{"before": {"backupsize": ${before.backupsize}, "version_count": ` +
    `${before.version_count}}, "after": {"version_count": ${after.version_count}, ` +
    `"backupsize": ${after.backupsize}}${extra.join("")}}`;
  return encodePacket(PacketType.CompactRes, encoder.encode(text));
}

export function decodeCompactResult(packet: Packet): CompactStats {
  let stats: CompactStats;
  try {
    stats = JSON.parse(decoder.decode(packet.payload));
  } catch {
    throw new WireError("COMPACT_RES is not JSON");
  }
  const sizes = (side: unknown) =>
    typeof side === "object" && side !== null &&
    typeof (side as CompactStats["before"]).backupsize === "number" &&
    typeof (side as CompactStats["before"]).version_count === "number";
  if (!sizes(stats?.before) || !sizes(stats?.after)) {
    throw new WireError(
      "COMPACT_RES lacks before and after, each with backupsize and version_count",
    );
  }
  return stats;
}
