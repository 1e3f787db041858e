/**
 * The checks a backup server makes of what an encrypted backup's client sends it sealed
 * (docs/PROTOCOL.md, "Encrypted backups"): it cannot open a record, so it checks all it can
 * read in the clear, the headers and checksums, before it stores any byte.
 *
 * @module
 */
import {
  decodeRecordHeader,
  isSealed,
  oversized,
  payloadChecks,
  RECORD_HEADER_SIZE,
  type RecordHeader,
  RecordKind,
} from "../format/record.ts";
import {
  decodeSegmentHeader,
  formatBackupId,
  scanSegment,
  SEGMENT_HEADER_SIZE,
  type SegmentHeader,
  SegmentKind,
} from "../format/segment.ts";
import { sameBytes } from "../crypto/data_key.ts";

/** Sealed bytes that fail a check; the server refuses them, storing nothing. */
export class SealedInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SealedInputError";
  }
}

/** The header of one whole sealed record of `kind` in `bytes`, checked. */
export function sealedRecordHeader(bytes: Uint8Array, kind: RecordKind): RecordHeader {
  const header = decodeRecordHeader(bytes);
  const what = kind === RecordKind.Seal ? "seal" : "change";
  if (!header) throw new SealedInputError(`the sealed ${what}'s header fails its checksum`);
  const problem = header.kind !== kind
    ? `is of kind ${header.kind}, not ${kind}`
    : !isSealed(header.codec)
    ? `is not sealed (codec ${header.codec})`
    : oversized(header) ??
      (payloadChecks(header, bytes.subarray(RECORD_HEADER_SIZE))
        ? undefined
        : "fails its length or payload checksum");
  if (problem) throw new SealedInputError(`the sealed ${what} ${problem}`);
  return header;
}

/** What a sealed base must belong to. */
export interface BaseOwner {
  backupId: Uint8Array;
  keyId: Uint8Array;
}

/**
 * Checks the sealed base segment in the file `path` (written there by the server, not yet
 * in the backup): a base of `owner`'s backup and key whose every record checks, snapshot
 * parts then one end, all at its version. Returns its header.
 */
export function checkSealedBase(path: string, owner: BaseOwner): SegmentHeader {
  const file = Deno.openSync(path, { read: true });
  try {
    const head = new Uint8Array(SEGMENT_HEADER_SIZE);
    if (file.readSync(head) !== SEGMENT_HEADER_SIZE) {
      throw new SealedInputError("the sealed base is shorter than a segment header");
    }
    let header: SegmentHeader;
    try {
      header = decodeSegmentHeader(head, path);
    } catch (error) {
      throw new SealedInputError(`the sealed base's header: ${(error as Error).message}`);
    }
    if (header.kind !== SegmentKind.Base) {
      throw new SealedInputError("the sealed base's header is not a base's");
    }
    if (!sameBytes(header.backupId, owner.backupId)) {
      throw new SealedInputError(
        `the sealed base is of backup ${formatBackupId(header.backupId)}, not of this one, ` +
          formatBackupId(owner.backupId),
      );
    }
    if (!header.keyId || !sameBytes(header.keyId, owner.keyId)) {
      throw new SealedInputError("the sealed base is not sealed with this backup's key");
    }
    let end = false;
    try {
      const records = scanSegment(file, path, { decode: false, sealed: true });
      for (let step = records.next();; step = records.next()) {
        if (step.done) {
          if (step.value.tornBytes > 0) throw new SealedInputError("the sealed base is cut short");
          break;
        }
        const { header: record } = step.value;
        if (end || record.version !== header.number) {
          throw new SealedInputError(
            "the sealed base holds a record after its end, or of another version",
          );
        }
        end = record.kind === RecordKind.SnapshotEnd;
        if (!end && record.kind !== RecordKind.SnapshotPart) {
          throw new SealedInputError(`the sealed base holds a record of kind ${record.kind}`);
        }
      }
    } catch (error) {
      if (error instanceof SealedInputError) throw error;
      throw new SealedInputError(`the sealed base: ${(error as Error).message}`);
    }
    if (!end) throw new SealedInputError("the sealed base has no end record");
    return header;
  } finally {
    file.close();
  }
}
