/**
 * Sealed records in an encrypted S3 backup's objects (docs/FORMAT.md, "On S3"): each record
 * is sealed as in a file backup (lib/crypto/record_cipher.ts), but its associated data names
 * its place in the S3 layout instead of a segment: the backup id, the object's kind and the
 * numbers its name carries (a base: version and sequence; a pack: first and last sequence;
 * a change object: sequence, generation and the generation it follows), then the record's
 * offset in the object and its header's fields. So a record or an object copied under another name, into
 * another backup, or a superseded generation renamed over a newer one, does not open.
 *
 * Readers turn sealed records back into plain ones ({@linkcode unsealRecord}) as they fetch
 * them: the file reader then reads them by the same rules as any file backup.
 *
 * @module
 */
import {
  Codec,
  frameRecord,
  headerFields,
  isSealed,
  type RecordCipher,
  type RecordHeader,
  type StoredPayload,
} from "../../format/record.ts";
import { CorruptBackupError } from "../../format/segment.ts";
import type { DataKey } from "../../crypto/data_key.ts";
import { placeCipher } from "../../crypto/record_cipher.ts";

/**
 * What an object is, as its associated data says: `Change` is an older backup's change
 * object, whose name does not say which generation it follows; `FollowingChange` one that
 * does, the third number of its place.
 */
export const ObjectKind = { Base: 1, Pack: 2, Change: 3, FollowingChange: 4 } as const;
export type ObjectKind = typeof ObjectKind[keyof typeof ObjectKind];

/** An object's place: its kind and the two numbers of its name. */
export interface ObjectPlace {
  backupId: Uint8Array;
  kind: ObjectKind;
  /** Base: its version; pack: its first sequence; change: its sequence. */
  first: number;
  /** Base: the sequence it covers up to; pack: its last sequence; change: its generation. */
  second: number;
  /** A `FollowingChange`: the generation of the record before it that it follows. */
  third?: number;
}

/**
 * The place of a change object: the numbers of its name, and what its record's header links
 * it to (`1 + the generation it follows`; `0` in an older backup's, which names none).
 */
export function changePlace(
  backupId: Uint8Array,
  change: { seq: number; gen: number },
  link: number,
): ObjectPlace {
  const { seq, gen } = change;
  return link === 0
    ? { backupId, kind: ObjectKind.Change, first: seq, second: gen }
    : { backupId, kind: ObjectKind.FollowingChange, first: seq, second: gen, third: link - 1 };
}

const LABEL = new TextEncoder().encode("clnb-s3o");

/** The cipher of the records of the object at `place`. */
export function objectCipher(key: DataKey, place: ObjectPlace): RecordCipher {
  const numbers = place.third === undefined ? 2 : 3;
  const bytes = new Uint8Array(LABEL.length + 16 + 1 + 8 * numbers);
  const view = new DataView(bytes.buffer);
  bytes.set(LABEL);
  bytes.set(place.backupId, LABEL.length);
  view.setUint8(LABEL.length + 16, place.kind);
  view.setBigUint64(LABEL.length + 17, BigInt(place.first));
  view.setBigUint64(LABEL.length + 25, BigInt(place.second));
  if (place.third !== undefined) view.setBigUint64(LABEL.length + 33, BigInt(place.third));
  return placeCipher(key, bytes);
}

/**
 * The payload of the sealed record (its checked `header` and `stored` bytes) at `offset` of
 * the object `key`, opened but still compressed, to frame again: plain (a reader), or sealed
 * for another place (the packer). Refuses a plain record and one that does not authenticate.
 */
export function openSealed(
  header: RecordHeader,
  stored: Uint8Array,
  cipher: RecordCipher,
  offset: number,
  key: string,
): StoredPayload {
  if (!isSealed(header.codec)) {
    throw new CorruptBackupError(key, offset, "a plain record in an encrypted backup");
  }
  const opened = cipher.open(headerFields(header), offset, stored);
  if (opened === undefined) {
    throw new CorruptBackupError(key, offset, "a record that fails authentication");
  }
  const codec = header.codec === Codec.SealedZstd ? Codec.Zstd : Codec.Raw;
  return { codec, bytes: opened, rawLength: header.rawLength };
}

/** The plain record (header and compressed payload) of a sealed one; see {@linkcode openSealed}. */
export function unsealRecord(
  header: RecordHeader,
  stored: Uint8Array,
  cipher: RecordCipher,
  offset: number,
  key: string,
): Uint8Array {
  return frameRecord(header.kind, header.version, openSealed(header, stored, cipher, offset, key));
}
