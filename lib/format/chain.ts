/**
 * The chain rules of a backup directory, shared by the writer and every reader, so that a
 * missing, extra or foreign segment is found the same way by all of them (see docs/FORMAT.md,
 * "The chain").
 *
 * - Every segment carries the backup's id; one that carries another is refused by name.
 * - The chain starts at the log the oldest base names as its first (log 1 without a base);
 *   logs below it are covered by that base and not read.
 * - Every log but the live one ends with a seal naming the next log, which must exist: so
 *   deleting the newest log, or a log in the middle, is found.
 * - The live log is the first one without a seal. After it there may be only one log without
 *   records: a roll a crash interrupted (the next log is made before the seal is written).
 *
 * @module
 */
import { logName, readLayout } from "./layout.ts";
import { existsSync } from "../fs/exists.ts";
import type { KeptBuffer } from "../fs/kept_buffer.ts";
import {
  decodeRecordHeader,
  decodeSeal,
  encodeSeal,
  encodeSnapshotEnd,
  isSealed,
  payloadChecks,
  RECORD_HEADER_SIZE,
  type RecordCipher,
  type RecordHeader,
  RecordKind,
  SEALED_OVERHEAD,
} from "./record.ts";
import {
  CorruptBackupError,
  dataEnd,
  decodeSegmentHeader,
  formatBackupId,
  readAt,
  ScanBuffer,
  type ScanOptions,
  scanSegment,
  SEGMENT_HEADER_SIZE,
  type SegmentHeader,
  SegmentKind,
  type SegmentRecord,
  type SegmentTail,
} from "./segment.ts";

/** One segment file and its checked header. */
export interface Segment {
  path: string;
  /** Logs: the sequence; bases: the snapshot's version. */
  number: number;
  header: SegmentHeader;
}

export interface Chain {
  dir: string;
  backupId: Uint8Array;
  /** The id of the key that seals every record of an encrypted backup; a plain one's: none. */
  keyId: Uint8Array | undefined;
  /** The first log of the chain. */
  start: number;
  /** Bases, oldest first. */
  bases: Segment[];
  /** The logs of the chain, from its first one on, in order. */
  logs: Segment[];
  /** Leftovers of a write interrupted by a crash. */
  temporaries: string[];
}

/** One record of a log, with the log it is in. */
export interface LogRecord extends SegmentRecord {
  log: Segment;
}

/** How records are read: decoded or not, and opened with what (an encrypted backup's). */
export interface ChainScanOptions {
  decode: boolean;
  /** The cipher of a segment of an encrypted backup; absent: sealed payloads stay closed. */
  cipherFor?: (segment: SegmentHeader) => RecordCipher;
  /** A read buffer shared by the scans of many segments. */
  buffer?: ScanBuffer;
  /** Where to decode payloads, each holding until the next record (see ScanOptions). */
  payloads?: KeptBuffer;
}

/** The options {@linkcode scanSegment} reads `segment` with. */
export function segmentScan(segment: Segment, options: ChainScanOptions): ScanOptions {
  const sealed = segment.header.keyId !== undefined;
  return {
    decode: options.decode,
    sealed,
    cipher: sealed ? options.cipherFor?.(segment.header) : undefined,
    buffer: options.buffer,
    payloads: options.payloads,
  };
}

/** Where the chain ends. */
export interface ChainEnd {
  /** The live log: the one appended to. */
  live: Segment;
  /** Where its valid records end, and the torn tail after them. */
  tail: SegmentTail;
  /** A log without records after the live one: a roll that a crash interrupted. */
  abandoned: Segment | undefined;
}

/**
 * Opens a segment file for reading, refusing anything but a regular file (a FIFO would hang
 * the open, a symlink could lead out of the backup).
 */
export function openSegment(path: string, write = false): Deno.FsFile {
  if (!Deno.lstatSync(path).isFile) {
    throw new CorruptBackupError(path, undefined, "not a regular file, where a segment must be,");
  }
  const file = Deno.openSync(path, { read: true, write });
  if (!file.statSync().isFile) {
    file.close();
    throw new CorruptBackupError(path, undefined, "not a regular file, where a segment must be,");
  }
  return file;
}

function readHeader(path: string, kind: SegmentKind, number: number): Segment {
  const file = openSegment(path);
  try {
    const header = decodeSegmentHeader(readAt(file, 0, SEGMENT_HEADER_SIZE), path);
    if (header.kind !== kind || header.number !== number) {
      throw new CorruptBackupError(path, 0, "segment header does not match its name");
    }
    return { path, number, header };
  } finally {
    file.close();
  }
}

const sameId = (a: Uint8Array, b: Uint8Array) => a.every((byte, i) => byte === b[i]);

/** Why `segment` cannot be in a backup whose segments carry `keyId`, if it cannot. */
function keyMismatch(segment: Segment, keyId: Uint8Array | undefined): string | undefined {
  const own = segment.header.keyId;
  if (own === undefined && keyId === undefined) return undefined;
  if (own === undefined) return "a plain segment in an encrypted backup";
  if (keyId === undefined) return "an encrypted segment in a plain backup";
  return sameId(own, keyId)
    ? undefined
    : `a segment encrypted with another key (id ${formatBackupId(own)}, where the backup's is ${
      formatBackupId(keyId)
    })`;
}

/**
 * The backup's id: the one most segments carry (a segment copied in from elsewhere is the
 * odd one out); on a tie, the newest log's.
 */
function backupIdOf(segments: Segment[]): { id: Uint8Array; holder: Segment } {
  const counts = new Map<string, { count: number; holder: Segment }>();
  for (const segment of segments) {
    const key = formatBackupId(segment.header.backupId);
    const entry = counts.get(key) ?? { count: 0, holder: segment };
    entry.count++;
    entry.holder = segment;
    counts.set(key, entry);
  }
  let best: { count: number; holder: Segment } | undefined;
  for (const entry of counts.values()) if (!best || entry.count >= best.count) best = entry;
  return { id: best!.holder.header.backupId, holder: best!.holder };
}

/** Reads a backup directory's segment headers and checks what can be checked from them. */
export function readChain(dir: string): Chain {
  const layout = readLayout(dir);
  const bases = layout.bases.map((b) => readHeader(b.path, SegmentKind.Base, b.version));
  const allLogs = layout.logs.map((l) => readHeader(l.path, SegmentKind.Log, l.sequence));
  // Logs last, so that on a tie the newest log's id wins.
  const all = [...bases, ...allLogs];
  if (all.length === 0) {
    throw new CorruptBackupError(dir, undefined, "no log segment");
  }
  const { id, holder } = backupIdOf(all);
  for (const segment of all) {
    if (!sameId(segment.header.backupId, id)) {
      throw new CorruptBackupError(
        segment.path,
        undefined,
        `a segment of another backup (id ${formatBackupId(segment.header.backupId)}, where ` +
          `"${holder.path}" has ${formatBackupId(id)})`,
      );
    }
  }
  // A plain segment among encrypted ones (or the reverse) is refused: never a mix of the two.
  const keyId = holder.header.keyId;
  for (const segment of all) {
    const mismatch = keyMismatch(segment, keyId);
    if (mismatch) throw new CorruptBackupError(segment.path, undefined, mismatch);
  }
  const start = bases[0]?.header.firstLog ?? 1;
  const logs = allLogs.filter((l) => l.number >= start);
  const highest = logs.at(-1)?.number ?? start;
  let previous = start;
  for (const base of bases) {
    const first = base.header.firstLog;
    if (first < previous || first > highest) {
      throw new CorruptBackupError(base.path, 40, `base names log ${first} as its first`);
    }
    previous = first;
  }
  return { dir, backupId: id, keyId, start, bases, logs, temporaries: layout.temporaries };
}

/**
 * Reads the chain's changes from log `from` on, checking each log against the rules above;
 * seals are checked, not yielded. A torn tail is allowed in the live log only.
 */
export function* scanLogs(
  chain: Chain,
  from: number,
  options: ChainScanOptions,
): Generator<LogRecord, ChainEnd, void> {
  const logs = chain.logs.filter((l) => l.number >= from);
  // One read buffer for every log: the logs are read one after another.
  const scan = { ...options, buffer: new ScanBuffer() };
  for (const [i, log] of logs.entries()) {
    if (log.number !== from + i) {
      const missing = `${chain.dir}/${logName(from + i)}`;
      throw new CorruptBackupError(missing, undefined, "a log segment is missing");
    }
    const { sealedBy, tail } = yield* scanLog(log, scan);
    const next = logs[i + 1];
    if (sealedBy !== undefined) {
      if (tail.tornBytes > 0) {
        throw new CorruptBackupError(log.path, tail.end, "bytes after the seal");
      }
      if (!next) {
        const successor = `${chain.dir}/${logName(log.number + 1)}`;
        // A writer rolled after the directory was listed (it makes the next log before the
        // seal): read on into it, as a reader beside a live plugin must.
        if (existsSync(successor)) {
          const added = readHeader(successor, SegmentKind.Log, log.number + 1);
          if (!sameId(added.header.backupId, chain.backupId)) {
            throw new CorruptBackupError(successor, undefined, "a segment of another backup");
          }
          const mismatch = keyMismatch(added, chain.keyId);
          if (mismatch) throw new CorruptBackupError(successor, undefined, mismatch);
          logs.push(added);
          continue;
        }
        throw new CorruptBackupError(
          successor,
          undefined,
          `a log segment that "${log.path}" is sealed with is missing`,
        );
      }
      continue;
    }
    if (!next) return { live: log, tail, abandoned: undefined };
    if (i + 2 === logs.length && next.number === log.number + 1 && isEmpty(next)) {
      return { live: log, tail, abandoned: next };
    }
    if (tail.tornBytes > 0) {
      // A damaged record where the seal should end it: a crash cannot leave that once
      // anything is written to the next log, as the seal is synced first.
      throw new CorruptBackupError(log.path, tail.end, "a damaged record where the seal must be");
    }
    throw new CorruptBackupError(
      next.path,
      undefined,
      `a log that follows "${log.path}", which has no seal (changes were cut from its end, ` +
        `or a log was put in),`,
    );
  }
  // Every log either ends the chain or leads to the next, so only no log at all gets here.
  throw new CorruptBackupError(
    `${chain.dir}/${logName(from)}`,
    undefined,
    "a log segment is missing",
  );
}

/**
 * Checks that a change may follow the one before it: versions go up by one, or repeat (hooks
 * without a bump); the first after a base (or after version 0, without one) is at most one
 * above it. A gap means lost changes (a missing base, say); appending after it would only
 * make a backup that cannot restore.
 */
export function checkFollows(
  previous: number | undefined,
  baseVersion: number,
  record: { version: number; path: string; offset: number },
): void {
  const follows = previous === undefined
    ? record.version <= baseVersion + 1
    : record.version === previous || record.version === previous + 1;
  if (!follows) {
    throw new CorruptBackupError(
      record.path,
      record.offset,
      `change ${record.version} follows version ${previous ?? baseVersion}`,
    );
  }
}

/**
 * A segment's last record when it is of `kind` with a payload of `payloadBytes` (sealed, in
 * an encrypted backup's segment) and checks, read from the file's last bytes alone, no
 * scan; `undefined` otherwise. Zeros after it are passed over, as a scan takes them: a log
 * sealed just before a power cut may keep zeros that were written ahead of its records.
 */
function lastRecord(
  segment: Segment,
  kind: RecordKind,
  payloadBytes: number,
): { header: RecordHeader; payload: Uint8Array; offset: number } | undefined {
  const sealed = segment.header.keyId !== undefined;
  const bytes = RECORD_HEADER_SIZE + payloadBytes + (sealed ? SEALED_OVERHEAD : 0);
  const file = openSegment(segment.path);
  const endingAt = (end: number) => {
    if (end < SEGMENT_HEADER_SIZE + bytes) return undefined;
    const tail = readAt(file, end - bytes, bytes);
    const header = decodeRecordHeader(tail);
    const payload = tail.subarray(RECORD_HEADER_SIZE);
    if (header?.kind !== kind || !payloadChecks(header, payload)) return undefined;
    if (isSealed(header.codec) !== sealed) return undefined;
    return { header, payload, offset: end - bytes };
  };
  try {
    const size = file.statSync().size;
    const found = endingAt(size);
    if (found) return found;
    // The record may itself end in zero bytes: it ends within `bytes` of the last other one.
    const data = dataEnd(file, SEGMENT_HEADER_SIZE, size, segment.path);
    for (let end = data; end < size && end <= data + bytes; end++) {
      const record = endingAt(end);
      if (record) return record;
    }
    return undefined;
  } finally {
    file.close();
  }
}

/**
 * The version of a sealed log's last change, from its seal alone (its last bytes);
 * `undefined` for a log that does not end in its seal (the live one).
 */
export function sealedVersion(log: Segment): number | undefined {
  const seal = lastRecord(log, RecordKind.Seal, encodeSeal(0).length);
  if (!seal) return undefined;
  // A sealed seal is opened by the full scan; its header's version is checked already.
  if (isSealed(seal.header.codec)) return seal.header.version;
  return decodeSeal(seal.payload) === log.number + 1 ? seal.header.version : undefined;
}

/**
 * Throws {@linkcode CorruptBackupError} when `base` does not end with a whole snapshot-end
 * record, read from its last bytes alone (zeros after it are passed over, as a restore takes
 * them). The writer's open reads no base whole (a restore does), yet a base cut short at a
 * record boundary (its end record lost to a copy that stopped, or a damaged sector at the
 * end) would otherwise take changes on top of a snapshot nothing can restore.
 */
export function checkBaseEnd(base: Segment): void {
  const payloadBytes = encodeSnapshotEnd(0, 0).length;
  if (lastRecord(base, RecordKind.SnapshotEnd, payloadBytes)) return;
  const bytes = RECORD_HEADER_SIZE + payloadBytes +
    (base.header.keyId !== undefined ? SEALED_OVERHEAD : 0);
  throw new CorruptBackupError(
    base.path,
    Math.max(Deno.statSync(base.path).size - bytes, SEGMENT_HEADER_SIZE),
    "a base that does not end with its snapshot's end record (cut short?)",
  );
}

function isEmpty(log: Segment): boolean {
  return Deno.lstatSync(log.path).size === SEGMENT_HEADER_SIZE;
}

function* scanLog(
  log: Segment,
  options: ChainScanOptions,
): Generator<LogRecord, { sealedBy: number | undefined; tail: SegmentTail }, void> {
  const file = openSegment(log.path);
  try {
    let sealedBy: number | undefined;
    let last: number | undefined;
    const records = scanSegment(file, log.path, segmentScan(log, options));
    for (let step = records.next();; step = records.next()) {
      if (step.done) return { sealedBy, tail: step.value };
      const { offset, header } = step.value;
      if (sealedBy !== undefined) {
        throw new CorruptBackupError(log.path, offset, "a record after the seal");
      }
      if (header.kind === RecordKind.Seal) {
        // Without the key (status) a sealed seal stays closed: its place is what it names.
        const { payload } = step.value;
        sealedBy = payload ? decodeSeal(payload) : log.number + 1;
        if (sealedBy !== log.number + 1) {
          throw new CorruptBackupError(log.path, offset, "a seal that names another log");
        }
        if (last !== undefined && header.version !== last) {
          throw new CorruptBackupError(log.path, offset, "a seal at another version");
        }
        continue;
      }
      if (header.kind !== RecordKind.Change) {
        throw new CorruptBackupError(log.path, offset, `unexpected record kind ${header.kind}`);
      }
      last = header.version;
      yield { ...step.value, log };
    }
  } finally {
    file.close();
  }
}
