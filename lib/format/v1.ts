/**
 * The Python backup plugin's `.dbak` file format, version 1 (big-endian): a 512-byte header
 * `u32 format(=1), u32 version, u64 next_offset, u32 prev_version, u64 last_offset,
 * u64 record_count`, then records `u32 payload_length, u32 version, u8 type, payload`
 * (type 1: statements joined by NUL; type 2: a whole SQLite file).
 *
 * @module
 */

export const V1_HEADER_SIZE = 512;
export const V1_RECORD_HEADER_SIZE = 9;
export const V1Type = { Change: 1, Snapshot: 2 } as const;

export interface V1Header {
  version: number;
  nextOffset: number;
  prevVersion: number;
  lastOffset: number;
  count: number;
}

/** True when the bytes start with a v1 header. */
export function isV1Header(bytes: Uint8Array): boolean {
  return bytes.length >= 4 &&
    new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0) === 1;
}

export function decodeV1Header(bytes: Uint8Array): V1Header {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    version: view.getUint32(4),
    nextOffset: Number(view.getBigUint64(8)),
    prevVersion: view.getUint32(16),
    lastOffset: Number(view.getBigUint64(20)),
    count: Number(view.getBigUint64(28)),
  };
}

export function encodeV1Header(header: V1Header): Uint8Array {
  const out = new Uint8Array(V1_HEADER_SIZE);
  const view = new DataView(out.buffer);
  view.setUint32(0, 1);
  view.setUint32(4, header.version);
  view.setBigUint64(8, BigInt(header.nextOffset));
  view.setUint32(16, header.prevVersion);
  view.setBigUint64(20, BigInt(header.lastOffset));
  view.setBigUint64(28, BigInt(header.count));
  return out;
}

export function encodeV1Record(type: number, version: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(V1_RECORD_HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint32(4, version);
  view.setUint8(8, type);
  out.set(payload, V1_RECORD_HEADER_SIZE);
  return out;
}
