/**
 * The file backend's writer: appends changes to the live log segment of a backup directory,
 * each synced to stable storage before {@linkcode FileBackend.append} returns.
 *
 * @module
 */
import type { Backend, BackupState, Change } from "../backend.ts";
import { crashNow, crashPoint } from "../../fs/crash_point.ts";
import { writeAll, writeFileDurably } from "../../fs/durable.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../../format/record.ts";
import {
  CorruptBackupError,
  encodeSegmentHeader,
  scanNamedSegment,
  SEGMENT_HEADER_SIZE,
  SegmentKind,
  type SegmentTail,
} from "../../format/segment.ts";
import { type Layout, LOCK_NAME, logName, readLayout } from "../../format/layout.ts";
import type { CompactableBackend } from "../../compact/compactor.ts";
import type { CompactionSizes } from "../../compact/policy.ts";
import { finishDeletion } from "../../compact/deletion.ts";

/**
 * A live segment is sealed, and a new one started, once it would grow past this. A
 * compaction deletes sealed logs only (the live one holds the newest change), so this is
 * also about the most of the logs a compaction leaves.
 */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

export interface FileBackendOptions {
  segmentBytes?: number;
  /**
   * Sync once, on close and when a segment is sealed, instead of after each append. Only for
   * building a backup that is renamed into place after it is closed (upgrade): the plugin
   * must never use it, as it acknowledges each change.
   */
  syncOnClose?: boolean;
  /** Told about repairs made on open (a torn tail cut). */
  log?: (message: string) => void;
}

/** Where a scan of the logs has got to. */
interface LogCursor {
  /** The backup's version so far. */
  version: number;
  /** The last record's version, once there is one. */
  previous: number | undefined;
}

interface LiveRecord {
  offset: number;
  version: number;
}

/** How long to retry a held lock before calling it another writer's. */
const LOCK_PATIENCE_MS = 200;

/**
 * Tries the lock a few times: a child being forked by this process shares our last lock's
 * open file until it execs, so a lock just released can look held for a moment.
 */
function tryLock(lock: Deno.FsFile): boolean {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < LOCK_PATIENCE_MS; waited += 10) {
    if (lock.tryLockSync(true)) return true;
    Atomics.wait(pause, 0, 0, 10);
  }
  return lock.tryLockSync(true);
}

/** Another process holds a backup's write lock. */
export class BackupLockedError extends Error {
  constructor(readonly dir: string) {
    super(
      `Cannot open backup: another process is writing to "${dir}" (a running lightningd's ` +
        `plugin?): stop it first`,
    );
    this.name = "BackupLockedError";
  }
}

/** Takes the backup's write lock, or says who holds it. */
function lockDir(dir: string): Deno.FsFile {
  const lock = Deno.openSync(`${dir}/${LOCK_NAME}`, { read: true, write: true, create: true });
  if (!tryLock(lock)) {
    lock.close();
    throw new BackupLockedError(dir);
  }
  return lock;
}

export class FileBackend implements Backend, CompactableBackend {
  #failure: Error | undefined;
  #live!: Deno.FsFile;
  #liveSequence = 0;
  #liveEnd = 0;
  #liveRecords: LiveRecord[] = [];
  /** Version of the backup before the live segment's first record. */
  #versionBeforeLive = 0;
  #baseVersion = 0;
  #records = 0;
  /** Bytes of every base and sealed log; of the bases alone; of the newest base. */
  #sealedBytes = 0;
  #basesBytes = 0;
  #newestBaseBytes = 0;
  /** Records of each sealed log, by sequence, so a compaction's deletes can be counted. */
  #sealedLogRecords = new Map<number, number>();

  private constructor(
    readonly url: string,
    readonly dir: string,
    readonly segmentBytes: number,
    readonly syncOnClose: boolean,
    readonly lock: Deno.FsFile,
  ) {}

  /** Opens a backup directory for writing, cutting a torn tail a crash left. */
  static open(url: string, dir: string, options: FileBackendOptions = {}): FileBackend {
    const lock = lockDir(dir);
    try {
      const backend = new FileBackend(
        url,
        dir,
        options.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
        options.syncOnClose ?? false,
        lock,
      );
      backend.#load(options.log ?? (() => {}));
      return backend;
    } catch (error) {
      lock.close();
      throw error;
    }
  }

  #load(log: (message: string) => void): void {
    for (const name of finishDeletion(this.dir)) {
      log(`deleted "${name}", which an interrupted compaction had planned to delete`);
    }
    const layout = readLayout(this.dir);
    for (const tmp of layout.temporaries) Deno.removeSync(tmp, { recursive: true });
    this.#countBases(layout);
    if (layout.logs.length === 0) {
      throw new CorruptBackupError(this.dir, 0, "no log segment");
    }
    const cursor: LogCursor = { version: this.#baseVersion, previous: undefined };
    for (const [i, { sequence, path }] of layout.logs.entries()) {
      if (sequence !== layout.logs[0].sequence + i) {
        throw new CorruptBackupError(path, 0, `log segment ${sequence - 1} is missing before it`);
      }
      const isLive = i === layout.logs.length - 1;
      if (isLive) this.#versionBeforeLive = cursor.version;
      const recordsBefore = this.#records;
      const file = Deno.openSync(path, { read: true, write: isLive, append: isLive });
      let tail: SegmentTail;
      try {
        tail = this.#scanLog(file, path, sequence, isLive, cursor);
      } catch (error) {
        file.close();
        throw error;
      }
      if (!isLive) {
        file.close();
        this.#sealedBytes += tail.end;
        this.#sealedLogRecords.set(sequence, this.#records - recordsBefore);
        continue;
      }
      if (tail.tornBytes > 0) {
        file.truncateSync(tail.end);
        file.syncSync();
        log(
          `cut ${tail.tornBytes} torn bytes at offset ${tail.end} of "${path}": a crash ` +
            `interrupted an append, which was never acknowledged`,
        );
      }
      this.#live = file;
      this.#liveSequence = sequence;
      this.#liveEnd = tail.end;
    }
  }

  /** Checks one log segment's header and records; a torn tail is allowed only when live. */
  #scanLog(
    file: Deno.FsFile,
    path: string,
    sequence: number,
    isLive: boolean,
    cursor: LogCursor,
  ): SegmentTail {
    const records = scanNamedSegment(
      file,
      path,
      { kind: SegmentKind.Log, number: sequence },
      { tornAllowed: isLive, decode: false },
    );
    for (let step = records.next();; step = records.next()) {
      if (step.done) return step.value;
      const { offset, header: record } = step.value;
      if (record.kind !== RecordKind.Change) {
        throw new CorruptBackupError(path, offset, `unexpected record kind ${record.kind}`);
      }
      // Versions go up by one, or repeat (hooks without a bump); a gap means lost changes,
      // and appending after it would only make a backup that cannot restore.
      const follows = cursor.previous === undefined
        ? record.version <= this.#baseVersion + 1
        : record.version === cursor.previous || record.version === cursor.previous + 1;
      if (!follows) {
        throw new CorruptBackupError(
          path,
          offset,
          `change ${record.version} follows version ${cursor.previous ?? this.#baseVersion}`,
        );
      }
      cursor.previous = record.version;
      cursor.version = Math.max(cursor.version, record.version);
      this.#records++;
      if (isLive) this.#liveRecords.push({ offset, version: record.version });
    }
  }

  state(): BackupState {
    const last = this.#liveRecords.at(-1);
    const beforeLast = this.#liveRecords.at(-2)?.version ?? this.#versionBeforeLive;
    const version = Math.max(this.#baseVersion, last?.version ?? this.#versionBeforeLive);
    return {
      version,
      rewindVersion: last && last.version > this.#baseVersion
        ? Math.max(beforeLast, this.#baseVersion)
        : undefined,
      records: this.#records,
      bytes: this.#sealedBytes + this.#liveEnd,
    };
  }

  append(change: Change): Promise<void> {
    this.#guard(() => {
      const record = encodeRecord(
        RecordKind.Change,
        change.version,
        encodeStatements(change.statements),
      );
      if (this.#liveRecords.length > 0 && this.#liveEnd + record.length > this.segmentBytes) {
        this.#roll();
      }
      // Test-only (see crash_point.ts): `undefined` unless a crash test armed it.
      const crash = crashPoint?.next();
      if (crash === "before-write") crashNow();
      if (crash === "mid-write") {
        writeAll(this.#live, record.subarray(0, record.length >> 1));
        crashNow();
      }
      writeAll(this.#live, record);
      if (crash === "after-write-before-sync") crashNow();
      if (!this.syncOnClose) this.#live.syncDataSync();
      this.#liveRecords.push({ offset: this.#liveEnd, version: change.version });
      this.#liveEnd += record.length;
      this.#records++;
      if (crash === "after-sync-before-answer") crashNow();
    });
    return Promise.resolve();
  }

  rewind(): Promise<void> {
    this.#guard(() => {
      const last = this.#liveRecords.at(-1);
      if (!last || this.state().rewindVersion === undefined) {
        throw new Error("Cannot rewind backup: its last change is not one that can be dropped");
      }
      this.#live.truncateSync(last.offset);
      this.#live.syncDataSync();
      this.#liveRecords.pop();
      this.#liveEnd = last.offset;
      this.#records--;
    });
    return Promise.resolve();
  }

  /** Seals the live segment (it is already synced) and starts the next one. */
  #roll(): void {
    const sequence = this.#liveSequence + 1;
    writeFileDurably(
      this.dir,
      logName(sequence),
      encodeSegmentHeader({ kind: SegmentKind.Log, number: sequence }),
    );
    crashPoint?.reached("roll");
    if (this.syncOnClose) this.#live.syncDataSync();
    this.#live.close();
    this.#sealedBytes += this.#liveEnd;
    this.#sealedLogRecords.set(this.#liveSequence, this.#liveRecords.length);
    this.#versionBeforeLive = this.state().version;
    this.#live = Deno.openSync(`${this.dir}/${logName(sequence)}`, { write: true, append: true });
    this.#liveSequence = sequence;
    this.#liveEnd = SEGMENT_HEADER_SIZE;
    this.#liveRecords = [];
  }

  /**
   * Takes note of what a compaction changed beside the live log (a new base; deleted bases
   * and sealed logs), from the files' names and sizes: no scan on the hook's thread.
   */
  compacted(): void {
    const layout = readLayout(this.dir);
    this.#countBases(layout);
    const held = new Set(layout.logs.map((l) => l.sequence));
    for (const [sequence, records] of this.#sealedLogRecords) {
      if (held.has(sequence)) continue;
      this.#records -= records;
      this.#sealedLogRecords.delete(sequence);
    }
    this.#sealedBytes = this.#basesBytes + layout.logs
      .filter((l) => l.sequence !== this.#liveSequence)
      .reduce((sum, { path }) => sum + Deno.statSync(path).size, 0);
  }

  #countBases(layout: Layout): void {
    const sizes = layout.bases.map(({ path }) => Deno.statSync(path).size);
    const total = sizes.reduce((a, b) => a + b, 0);
    this.#baseVersion = layout.bases.at(-1)?.version ?? 0;
    this.#newestBaseBytes = sizes.at(-1) ?? 0;
    this.#sealedBytes += total - this.#basesBytes;
    this.#basesBytes = total;
  }

  /** The version a compaction folds up to: the one before the newest change. */
  compactionTarget(): number | undefined {
    return this.state().rewindVersion;
  }

  compactionSizes(): CompactionSizes {
    return {
      baseBytes: this.#newestBaseBytes,
      sealedLogBytes: this.#sealedBytes - this.#basesBytes,
    };
  }

  /** Runs a write; after a failed one the backup refuses all others (a failed fsync is final). */
  #guard(write: () => void): void {
    if (this.#failure) {
      throw new Error(`Cannot write backup: an earlier write failed: ${this.#failure.message}`);
    }
    try {
      write();
    } catch (error) {
      this.#failure = error instanceof Error ? error : new Error(String(error));
      throw this.#failure;
    }
  }

  close(): void {
    try {
      if (this.syncOnClose && !this.#failure) this.#live?.syncDataSync();
    } finally {
      this.#live?.close();
      this.lock.close();
    }
  }
}

/** Creates the first, empty log segment of a new backup directory. */
export function createEmptyLog(dir: string): void {
  writeFileDurably(dir, logName(1), encodeSegmentHeader({ kind: SegmentKind.Log, number: 1 }));
}
