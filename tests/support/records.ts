/**
 * Records with chosen header fields and good CRCs, as a bug or an attacker could write them:
 * the tests of what a reader does with lengths or payloads no writer produced.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { type Codec, RECORD_HEADER_SIZE, type RecordKind } from "../../lib/format/record.ts";

export interface CraftedRecord {
  kind: RecordKind;
  codec: Codec;
  version: number;
  stored: Uint8Array;
  rawLength: number;
  /** The stored length the header claims; the payload's length by default. */
  storedLength?: number;
}

/** Encodes a record header and payload whose CRCs both check. */
export function craftRecord(record: CraftedRecord): Uint8Array {
  const out = new Uint8Array(RECORD_HEADER_SIZE + record.stored.length);
  const view = new DataView(out.buffer);
  view.setUint8(4, record.kind);
  view.setUint8(5, record.codec);
  view.setBigUint64(8, BigInt(record.version));
  view.setUint32(16, record.storedLength ?? record.stored.length);
  view.setUint32(20, record.rawLength);
  view.setUint32(24, crc32(record.stored));
  view.setUint32(0, crc32(out.subarray(4, RECORD_HEADER_SIZE)));
  out.set(record.stored, RECORD_HEADER_SIZE);
  return out;
}
