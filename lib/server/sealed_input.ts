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
import { readLayout } from "../format/layout.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import type { BackupDescription } from "../backends/backend.ts";
import { basename } from "node:path";

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
  /** The backup id its segments must name. */
  backupId: Uint8Array;
  /** The id of the data key its segments must name. */
  keyId: Uint8Array;
}

/** The checked header of the sealed segment `file` (a `what`, of kind `kind`) of `owner`. */
function sealedSegmentHeader(
  file: Deno.FsFile,
  path: string,
  what: string,
  kind: SegmentKind,
  owner: BaseOwner,
): SegmentHeader {
  const head = new Uint8Array(SEGMENT_HEADER_SIZE);
  if (file.readSync(head) !== SEGMENT_HEADER_SIZE) {
    throw new SealedInputError(`${what} is shorter than a segment header`);
  }
  let header: SegmentHeader;
  try {
    header = decodeSegmentHeader(head, path);
  } catch (error) {
    throw new SealedInputError(`${what}'s header: ${(error as Error).message}`);
  }
  if (header.kind !== kind) {
    throw new SealedInputError(
      `${what}'s header is not a ${kind === SegmentKind.Base ? "base" : "log"}'s`,
    );
  }
  if (!sameBytes(header.backupId, owner.backupId)) {
    throw new SealedInputError(
      `${what} is of backup ${formatBackupId(header.backupId)}, not of this one, ` +
        formatBackupId(owner.backupId),
    );
  }
  if (!header.keyId || !sameBytes(header.keyId, owner.keyId)) {
    throw new SealedInputError(`${what} is not sealed with this backup's key`);
  }
  return header;
}

/** Every record of the sealed segment `file` after its header, checked, in order. */
function* sealedRecords(file: Deno.FsFile, path: string, what: string): Generator<RecordHeader> {
  try {
    const records = scanSegment(file, path, { decode: false, sealed: true });
    for (let step = records.next();; step = records.next()) {
      if (step.done) {
        if (step.value.tornBytes > 0) throw new SealedInputError(`${what} is cut short`);
        return;
      }
      yield step.value.header;
    }
  } catch (error) {
    if (error instanceof SealedInputError) throw error;
    throw new SealedInputError(`${what}: ${(error as Error).message}`);
  }
}

/**
 * Checks the sealed base segment in the file `path` (written there by the server, not yet
 * in the backup): a base of `owner`'s backup and key whose every record checks, snapshot
 * parts then one end, all at its version. Returns its header.
 */
export function checkSealedBase(
  path: string,
  owner: BaseOwner,
  what = "the sealed base",
): SegmentHeader {
  const file = Deno.openSync(path, { read: true });
  try {
    const header = sealedSegmentHeader(file, path, what, SegmentKind.Base, owner);
    let end = false;
    for (const record of sealedRecords(file, path, what)) {
      if (end || record.version !== header.number) {
        throw new SealedInputError(`${what} holds a record after its end, or of another version`);
      }
      end = record.kind === RecordKind.SnapshotEnd;
      if (!end && record.kind !== RecordKind.SnapshotPart) {
        throw new SealedInputError(`${what} holds a record of kind ${record.kind}`);
      }
    }
    if (!end) throw new SealedInputError(`${what} has no end record`);
    return header;
  } finally {
    file.close();
  }
}

/**
 * Checks the sealed log segment in the file `path`: a log of `owner`'s backup and key whose
 * every record is sealed and passes its checks, whole (no torn tail).
 */
function checkSealedLog(path: string, owner: BaseOwner, what: string): void {
  const file = Deno.openSync(path, { read: true });
  try {
    sealedSegmentHeader(file, path, what, SegmentKind.Log, owner);
    for (const record of sealedRecords(file, path, what)) {
      if (record.kind !== RecordKind.Change && record.kind !== RecordKind.Seal) {
        throw new SealedInputError(`${what} holds a record of kind ${record.kind}`);
      }
    }
  } finally {
    file.close();
  }
}

/**
 * Checks the encrypted backup a node staged in `dir` (upgrade --encrypt): every segment in
 * it, listed or not, is `owner`'s and sealed with its key, every record passes its checks,
 * and the segments make one chain, which it describes (without the key).
 */
export function checkSealedBackup(dir: string, owner: BaseOwner): BackupDescription {
  const layout = readLayout(dir);
  for (const { path } of layout.bases) {
    checkSealedBase(path, owner, `the encrypted copy's "${basename(path)}"`);
  }
  for (const { path } of layout.logs) {
    checkSealedLog(path, owner, `the encrypted copy's "${basename(path)}"`);
  }
  if (layout.temporaries.length > 0) {
    throw new SealedInputError(`the encrypted copy holds files that are not segments`);
  }
  try {
    const description = new FileBackupReader(`file://${dir}`, dir).describe();
    if (description.tornBytes > 0) throw new Error("its live log has a torn tail");
    return description;
  } catch (error) {
    throw new SealedInputError(`the encrypted copy: ${(error as Error).message}`);
  }
}
