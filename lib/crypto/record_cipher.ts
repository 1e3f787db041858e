/**
 * The record codec of encrypted backups: each record's payload is compressed, then sealed
 * with XChaCha20-Poly1305 under the backup's data key and a fresh random 24-byte nonce, never
 * one derived from the version (a rewind writes a version again with other content).
 *
 * The associated data binds the record to its place: the backup id, the segment's kind and
 * number (and a base's first log), the record's offset in it, and its header's fields (kind,
 * codec, version, lengths).
 * So a record copied or moved to another place, within a segment, to another segment or
 * into another backup, does not open, nor does one with a bit changed anywhere.
 *
 * @module
 */
import { type RecordCipher, SEALED_OVERHEAD } from "../format/record.ts";
import { type SegmentHeader, SegmentKind } from "../format/segment.ts";
import type { DataKey } from "./data_key.ts";

const LABEL = new TextEncoder().encode("clnb-rec");
/** Bytes 4..24 of a record's header, bound after its place and offset. */
const FIELDS_BYTES = 20;

/**
 * The cipher of the records of one segment. A base's first log is bound too, when its header
 * says so (`firstLogBound`, set on every base sealed since): a later one would skip the hooks
 * without a bump at the base's version (a migration's `PRAGMA foreign_keys = OFF`), which no
 * version rule catches, and the restore would replay the migration with foreign keys on.
 */
export function segmentCipher(
  key: DataKey,
  segment: Pick<SegmentHeader, "backupId" | "kind" | "number" | "firstLog" | "firstLogBound">,
): RecordCipher {
  const bound = segment.kind === SegmentKind.Base && segment.firstLogBound === true;
  const place = new Uint8Array(LABEL.length + 16 + 1 + 8 + (bound ? 8 : 0));
  const view = new DataView(place.buffer);
  place.set(LABEL);
  place.set(segment.backupId, LABEL.length);
  view.setUint8(LABEL.length + 16, segment.kind);
  view.setBigUint64(LABEL.length + 17, BigInt(segment.number));
  if (bound) view.setBigUint64(LABEL.length + 25, BigInt(segment.firstLog));
  return placeCipher(key, place);
}

/**
 * The cipher of the records of one place that `place` names (a label, then what the place
 * is: a segment's, or an S3 object's, lib/backends/s3/object_cipher.ts); the associated data
 * is `place`, the record's offset (u64) and its header's fields.
 */
export function placeCipher(key: DataKey, place: Uint8Array): RecordCipher {
  const placeBytes = place.length + 8;
  const aad = new Uint8Array(placeBytes + FIELDS_BYTES);
  const view = new DataView(aad.buffer);
  aad.set(place);
  const bind = (fields: Uint8Array, offset: number) => {
    view.setBigUint64(place.length, BigInt(offset));
    aad.set(fields, placeBytes);
    return aad;
  };
  return {
    overhead: SEALED_OVERHEAD,
    seal: (fields, offset, plain) => key.seal(plain, bind(fields, offset)),
    open: (fields, offset, sealed) => key.open(sealed, bind(fields, offset)),
  };
}
