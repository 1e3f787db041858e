/**
 * The record codec of encrypted backups: each record's payload is compressed, then sealed
 * with XChaCha20-Poly1305 under the backup's data key and a fresh random 24-byte nonce, never
 * one derived from the version (a rewind writes a version again with other content).
 *
 * The associated data binds the record to its place: the backup id, the segment's kind and
 * number, the record's offset in it, and its header's fields (kind, codec, version, lengths).
 * So a record copied or moved to another place, within a segment, to another segment or
 * into another backup, does not open, nor does one with a bit changed anywhere.
 *
 * @module
 */
import { type RecordCipher, SEALED_OVERHEAD } from "../format/record.ts";
import type { SegmentHeader } from "../format/segment.ts";
import type { DataKey } from "./data_key.ts";

const LABEL = new TextEncoder().encode("clnb-rec");
/** Label, backup id, segment kind, segment number, offset: then the header's fields. */
const PLACE_BYTES = LABEL.length + 16 + 1 + 8 + 8;
const FIELDS_BYTES = 20;

/** The cipher of the records of one segment. */
export function segmentCipher(
  key: DataKey,
  segment: Pick<SegmentHeader, "backupId" | "kind" | "number">,
): RecordCipher {
  const aad = new Uint8Array(PLACE_BYTES + FIELDS_BYTES);
  const view = new DataView(aad.buffer);
  aad.set(LABEL);
  aad.set(segment.backupId, LABEL.length);
  view.setUint8(LABEL.length + 16, segment.kind);
  view.setBigUint64(LABEL.length + 17, BigInt(segment.number));
  const bind = (fields: Uint8Array, offset: number) => {
    view.setBigUint64(PLACE_BYTES - 8, BigInt(offset));
    aad.set(fields, PLACE_BYTES);
    return aad;
  };
  return {
    overhead: SEALED_OVERHEAD,
    seal: (fields, offset, plain) => key.seal(plain, bind(fields, offset)),
    open: (fields, offset, sealed) => key.open(sealed, bind(fields, offset)),
  };
}
