/**
 * The search {@linkcode scanSegment} makes past a record header that fails its check, with
 * data after it: whether a whole record follows anywhere (then the header was whole once,
 * and is damaged) or not (a torn append). Up to MAX_PAYLOAD_BYTES of a file are searched,
 * which a broken or hostile file may fill with anything, so the search is bounded in memory
 * (a window at a time) and cheap where no header can start.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  decodeRecordHeader,
  mayStartRecordHeader,
  payloadChecks,
  RECORD_HEADER_SIZE,
} from "./record.ts";

/** Fills `out` from `offset` on; the part filled, shorter only at the end of the file. */
export type ReadInto = (offset: number, out: Uint8Array) => Uint8Array;

/** Bytes the search reads at once. */
const WINDOW_BYTES = 4 << 20;

/**
 * Whether a record that passes its checks starts at or after `from` and ends by `to`. A
 * window overlaps the one before by a header's bytes but one, so no header is missed.
 */
export function recordWithin(read: ReadInto, from: number, to: number): boolean {
  const buffer = new Uint8Array(Math.max(RECORD_HEADER_SIZE, Math.min(WINDOW_BYTES, to - from)));
  const step = buffer.length - RECORD_HEADER_SIZE + 1;
  for (let start = from; start + RECORD_HEADER_SIZE <= to; start += step) {
    const bytes = read(start, buffer.subarray(0, Math.min(buffer.length, to - start)));
    for (let at = headerAt(bytes, 0); at >= 0; at = headerAt(bytes, at + 1)) {
      const header = decodeRecordHeader(bytes.subarray(at, at + RECORD_HEADER_SIZE));
      if (!header) continue;
      const payloadAt = at + RECORD_HEADER_SIZE;
      const end = start + payloadAt + header.storedLength;
      if (end > to) continue;
      // A payload past the window is read whole, as the scan reads a record.
      const stored = end <= start + bytes.length
        ? bytes.subarray(payloadAt, payloadAt + header.storedLength)
        : read(start + payloadAt, new Uint8Array(header.storedLength));
      if (payloadChecks(header, stored)) return true;
    }
  }
  return false;
}

/**
 * The first offset from `from` on where a whole header's bytes are left and its fields can be
 * a header's (see mayStartRecordHeader), or -1: only those get a CRC.
 */
function headerAt(bytes: Uint8Array, from: number): number {
  for (let at = from; at + RECORD_HEADER_SIZE <= bytes.length; at++) {
    // A header's kind (byte 4) is never zero: go on to the next byte that is not.
    if (bytes[at + 4] === 0) at = nonZeroFrom(bytes, at + 4) - 4;
    if (at + RECORD_HEADER_SIZE <= bytes.length && mayStartRecordHeader(bytes, at)) return at;
  }
  return -1;
}

/** Zeros a native comparison passes over at once. */
const ZEROS = new Uint8Array(4096);

/**
 * The first index from `from` on whose byte is not zero, else `bytes.length`. A run of zeros
 * (a file grown past a damaged header: up to MAX_PAYLOAD_BYTES of them) is passed over a
 * block at a time by a native comparison; a short one, as most in data are, byte by byte.
 */
function nonZeroFrom(bytes: Uint8Array, from: number): number {
  let at = from;
  for (; at < bytes.length && at % ZEROS.length !== 0; at++) if (bytes[at] !== 0) return at;
  while (
    at + ZEROS.length <= bytes.length &&
    Buffer.compare(bytes.subarray(at, at + ZEROS.length), ZEROS) === 0
  ) {
    at += ZEROS.length;
  }
  for (; at < bytes.length; at++) if (bytes[at] !== 0) return at;
  return at;
}
