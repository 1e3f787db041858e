/**
 * The file backend's reader: streams a backup directory for restore and describes it, by the
 * chain rules of lib/format/chain.ts.
 *
 * @module
 */
import type { BackupDescription, BackupEntry, BackupReader } from "../backend.ts";
import type { CompactionStats } from "../../compact/compact.ts";
import { heldStats } from "../../compact/version_count.ts";
import { decodeSnapshotEnd, decodeStatements, RecordKind } from "../../format/record.ts";
import { CorruptBackupError, scanSegment, type SegmentRecord } from "../../format/segment.ts";
import { KeptBuffer } from "../../fs/kept_buffer.ts";
import {
  type ChainEnd,
  type ChainScanOptions,
  checkFollows,
  openSegment,
  readChain,
  scanLogs,
  type Segment,
  segmentScan,
} from "../../format/chain.ts";
import { isPragmaOnly } from "../../sqlite/apply.ts";
import type { DataKey } from "../../crypto/data_key.ts";
import { readLayout } from "../../format/layout.ts";
import { checkKey, scanWith } from "./encryption.ts";
import { checkInterrupted } from "../../fs/interrupt.ts";
import { readAhead } from "./read_ahead.ts";

/** Reads a base segment's records, to its end record, which must be its last. */
function* baseRecords(base: Segment, options: ChainScanOptions): Generator<SegmentRecord> {
  const file = openSegment(base.path);
  try {
    const records = scanSegment(file, base.path, segmentScan(base, options));
    let step = records.next();
    let ended = false;
    for (; !step.done; step = records.next()) {
      if (ended) {
        throw new CorruptBackupError(
          base.path,
          step.value.offset,
          "a record after the snapshot end",
        );
      }
      ended = step.value.header.kind === RecordKind.SnapshotEnd;
      yield step.value;
    }
    const tail = step.value;
    if (tail.tornBytes > 0) {
      throw new CorruptBackupError(base.path, tail.end, "a base that ends in a torn record");
    }
    // Cut at a record boundary, every record left checks: only the missing end shows it.
    if (!ended) throw new CorruptBackupError(base.path, 0, "snapshot has no end record");
  } finally {
    file.close();
  }
}

/** What a restore applies, with each change's statements still as stored (NUL-joined UTF-8). */
export type StoredEntry =
  | Exclude<BackupEntry, { kind: "change" }>
  | { kind: "stored-change"; version: number; payload: Uint8Array };

/** How a {@linkcode FileBackupReader} reads: with an encrypted backup's key, when to read ahead. */
export interface FileBackupReaderOptions {
  /** An encrypted backup's data key. */
  key?: DataKey;
  /**
   * Read and decode in a worker, ahead of the caller, once the logs to read hold at least
   * this many bytes (default 8 MiB); below that, starting the worker costs more than it saves.
   */
  readAheadFrom?: number;
}

const READ_AHEAD_FROM = 8 << 20;

/** Reads a file backup directory for restore, `status` and `verify`, without the writer's lock. */
export class FileBackupReader implements BackupReader {
  readonly #readAheadFrom: number;
  /**
   * An encrypted backup's data key; without it such a backup can be described (from its
   * headers and checksums), not restored.
   */
  key: DataKey | undefined;

  /** Reads the directory `dir`, opened as `url`; nothing is read until it is used. */
  constructor(readonly url: string, readonly dir: string, options: FileBackupReaderOptions = {}) {
    this.key = options.key;
    this.#readAheadFrom = options.readAheadFrom ?? READ_AHEAD_FROM;
  }

  /** The id of the key that seals this backup's records; `undefined` for a plain backup. */
  keyId(): Uint8Array | undefined {
    return readChain(this.dir).keyId;
  }

  *entries(toVersion = Infinity): Iterable<BackupEntry> {
    const stored = this.#logBytes() >= this.#readAheadFrom
      ? readAhead(
        { url: this.url, dir: this.dir, toVersion, key: this.key?.bytes },
        () => this.storedEntries(toVersion),
      )
      : this.storedEntries(toVersion);
    for (const entry of stored) {
      yield entry.kind === "stored-change"
        ? {
          kind: "change",
          version: entry.version,
          statements: decodeStatements(entry.payload, true),
        }
        : entry;
    }
  }

  #logBytes(): number {
    let bytes = 0;
    for (const log of readLayout(this.dir).logs) bytes += Deno.lstatSync(log.path).size;
    return bytes;
  }

  /**
   * {@linkcode entries}, each change's payload checked but not split into statements. Every
   * payload is decoded into one buffer, so a snapshot part's bytes and a change's payload
   * hold until the next entry is read.
   */
  *storedEntries(toVersion = Infinity): Generator<StoredEntry> {
    const scan = { ...scanWith(this.key, true), payloads: new KeptBuffer() };
    const chain = readChain(this.dir);
    checkKey(chain, this.key);
    const base = chain.bases.findLast((b) => b.number <= toVersion);
    if (!base && chain.bases.length > 0) {
      // The changes before the oldest base are not kept (its first log comes after them).
      throw new Error(
        `Cannot restore backup to version ${toVersion}: its oldest snapshot is at version ` +
          `${chain.bases[0].number}, and nothing older is kept: choose a version from there on`,
      );
    }
    const baseVersion = base?.number ?? 0;
    if (base) yield* this.#snapshot(base, scan);
    const logs = scanLogs(chain, base?.header.firstLog ?? chain.start, scan);
    let version = baseVersion;
    let previous: number | undefined;
    try {
      for (let step = logs.next();; step = logs.next()) {
        if (step.done) {
          yield* tailEntry(step.value, version);
          return;
        }
        const { header, payload, offset, log } = step.value;
        checkFollows(previous, baseVersion, { version: header.version, path: log.path, offset });
        previous = header.version;
        if (header.version < baseVersion) continue;
        // The base holds every change up to its version; a hook without a bump at that
        // version (a migration's PRAGMA) came after it and must still run.
        if (
          header.version === baseVersion && !isPragmaOnly(decodeStatements(payload!, true))
        ) continue;
        if (header.version > toVersion) return;
        version = header.version;
        yield { kind: "stored-change", version: header.version, payload: payload! };
      }
    } finally {
      // Read by hand, the logs' scan is not closed by a return: it would keep its log open
      // (a server's fd for each restore to an older version, or one its client left).
      logs.return(undefined as never);
    }
  }

  *#snapshot(base: Segment, scan: ChainScanOptions): Iterable<StoredEntry> {
    const { path, number: version } = base;
    let totalBytes = 0;
    let parts = 0;
    // Read to the base's end, past its end record: baseRecords refuses anything after it,
    // and a base without one.
    for (const { offset, header, payload } of baseRecords(base, scan)) {
      if (header.version !== version) {
        throw new CorruptBackupError(path, offset, "snapshot record of another version");
      }
      if (header.kind === RecordKind.SnapshotPart) {
        totalBytes += payload!.length;
        parts++;
        yield { kind: "snapshot-part", version, bytes: payload! };
        continue;
      }
      const end = header.kind === RecordKind.SnapshotEnd ? decodeSnapshotEnd(payload!) : undefined;
      if (!end || end.totalBytes !== totalBytes || end.parts !== parts) {
        throw new CorruptBackupError(path, offset, "snapshot end does not match its parts");
      }
      yield { kind: "snapshot-end", version, totalBytes };
    }
  }

  /** Facts about the backup, read anew from its files (every record is scanned). */
  describe(): BackupDescription {
    return this.#scan().description;
  }

  /**
   * Bytes and versions held, as a compaction reports them (`versionCount`: each change, and
   * each base once, however many parts it holds), read anew from the files.
   */
  heldStats(): CompactionStats {
    const { description, changes } = this.#scan();
    return heldStats(description.bytes, { changes, snapshots: description.snapshots.length });
  }

  /** Scans every record: the description, and the changes among its records. */
  #scan(): { description: BackupDescription; changes: number } {
    const chain = readChain(this.dir);
    checkKey(chain, this.key, false);
    const scan = scanWith(this.key, false);
    let snapshotRecords = 0;
    let changes = 0;
    let bytes = 0;
    let firstVersion: number | undefined = chain.bases[0]?.number;
    let lastVersion = chain.bases.at(-1)?.number ?? 0;
    // A pass over the whole backup, as long as a restore's reading: Ctrl-C stops it (verify).
    for (const base of chain.bases) {
      for (const _ of baseRecords(base, scan)) {
        checkInterrupted();
        snapshotRecords++;
      }
      bytes += Deno.statSync(base.path).size;
    }
    const logs = scanLogs(chain, chain.start, scan);
    const baseVersion = chain.bases.at(-1)?.number ?? 0;
    let previous: number | undefined;
    let step = logs.next();
    for (; !step.done; step = logs.next()) {
      checkInterrupted();
      const { header, offset, log } = step.value;
      checkFollows(previous, baseVersion, { version: header.version, path: log.path, offset });
      previous = header.version;
      changes++;
      firstVersion ??= step.value.header.version;
      lastVersion = Math.max(lastVersion, step.value.header.version);
    }
    const { tail, live } = step.value;
    // The live log by its records (and torn tail), as the writer counts it: not the zeros
    // a running writer keeps ahead of them.
    for (const log of chain.logs) {
      bytes += log === live ? tail.end + tail.tornBytes : Deno.statSync(log.path).size;
    }
    const description: BackupDescription = {
      url: this.url,
      format: "cln-backup 3",
      ...(chain.keyId ? { encrypted: true } : {}),
      snapshots: chain.bases.map((b) => b.number),
      firstVersion: firstVersion ?? 0,
      lastVersion,
      records: snapshotRecords + changes,
      bytes,
      tornBytes: tail.tornBytes,
      tail: tail.tornBytes > 0
        ? { path: live.path, offset: tail.end, bytes: tail.tornBytes }
        : undefined,
    };
    return { description, changes };
  }

  /** Nothing to release: each read opens and closes its own files. */
  close(): void {}
}

function* tailEntry(end: ChainEnd, version: number): Iterable<StoredEntry> {
  if (end.tail.tornBytes === 0) return;
  yield {
    kind: "tail",
    version,
    path: end.live.path,
    offset: end.tail.end,
    bytes: end.tail.tornBytes,
  };
}
