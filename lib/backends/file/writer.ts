/**
 * The file backend's writer: appends changes to the live log segment of a backup directory,
 * each synced to stable storage before {@linkcode FileBackend.append} returns.
 *
 * @module
 */
import type { Backend, BackupState, Change, Tail } from "../backend.ts";
import { crashNow, crashPoint } from "../../fs/crash_point.ts";
import { atStep } from "../../fs/step_seam.ts";
import { ownLike } from "../../fs/owner_like.ts";
import { isOutOfRoom } from "../../fs/os_error.ts";
import { syncDir, writeAll, writeFileDurably } from "../../fs/durable.ts";
import {
  encodeRecord,
  encodeSeal,
  encodeStatements,
  frameRecord,
  type RecordCipher,
  RecordKind,
  recordLength,
  storePayload,
} from "../../format/record.ts";
import {
  CorruptBackupError,
  dataEnd,
  encodeSegmentHeader,
  formatBackupId,
  readAt,
  SEGMENT_HEADER_SIZE,
  SegmentKind,
} from "../../format/segment.ts";
import type { DataKey } from "../../crypto/data_key.ts";
import { WRAPPED_KEY_NAME } from "../../crypto/wrapped_key.ts";
import { segmentCipher } from "../../crypto/record_cipher.ts";
import { checkKey, scanWith } from "./encryption.ts";
import {
  type Chain,
  checkBaseEnd,
  checkFollows,
  openSegment,
  readChain,
  scanLogs,
  sealedVersion,
  type Segment,
} from "../../format/chain.ts";
import { LOCK_NAME, logName } from "../../format/layout.ts";
import { removeIfExists } from "../../fs/exists.ts";
import { releaseLock, tryLock } from "../../fs/flock.ts";
import { finishDeletion } from "../../compact/deletion.ts";
import type { CompactionStats } from "../../compact/compact.ts";
import { heldStats } from "../../compact/version_count.ts";
import type { CompactableBackend } from "../../compact/compactor.ts";
import type { CompactionSizes } from "../../compact/policy.ts";
import { newCopyCommand } from "../multi/mirrors.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { UnlinkCheck } from "../../fs/unlink_check.ts";
import { cliCommand } from "../../fs/advised_command.ts";

/**
 * A live segment is sealed, and a new one started, once it would grow past this. A
 * compaction deletes sealed logs only (the live one holds the newest change), so this is
 * also about the most of the logs a compaction leaves.
 */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

/** The most bytes a trim of the live log copies on the writer's thread (see compacted()). */
const TRIM_MAX_BYTES = 256 * 1024;
/**
 * Zeros the writer keeps written ahead of the live log's records. An append inside them
 * changes no file size, so its fdatasync writes no metadata: measured on this project's
 * disk, 122 us at the median against 177 us for an append that grows the file. They are
 * written before the record that runs past them, once every this many bytes of records.
 */
const ZEROED_AHEAD_BYTES = 1 << 20;
const ZEROS = new Uint8Array(ZEROED_AHEAD_BYTES);

/** How {@linkcode FileBackend.open} opens a backup directory. */
export interface FileBackendOptions {
  /** Bytes past which the live log is sealed and a new one started (16 MiB by default). */
  segmentBytes?: number;
  /**
   * Sync once, on close, when a segment is sealed and on {@linkcode FileBackend.flush},
   * instead of after each append. Only for building a backup that is renamed into place
   * after it is closed (upgrade), and for an async copy, which acknowledges nothing and is
   * mended from the primary after a crash (lib/backends/multi/async_copy.ts): the plugin's
   * own backup must never use it, as it acknowledges each change.
   */
  syncOnClose?: boolean;
  /** Told about repairs made on open (a roll a crash interrupted, undone). */
  log?: (message: string) => void;
  /** An encrypted backup's data key; it must be given for one, and only for one. */
  key?: DataKey;
  /**
   * Opens an encrypted backup without its key (a backup server's): records arrive sealed by
   * the client, laid out for their place ({@linkcode FileBackend.appendSealed}).
   */
  keyless?: boolean;
  /** Who likely holds the write lock when another process does, for the message. */
  lockHolder?: string;
  /** The node's lightning dir (the plugin's), which advice names; `DIR` where unknown. */
  lightningDir?: string;
}

/**
 * A change sealed by the client for the place it names: the live log `log`, at `offset`.
 * With `seal`, the client rolls: `seal` (for `log` at `offset`) ends that log, and `record`
 * is laid out as the first record of log `log + 1`.
 */
export interface SealedAppend {
  /** The sequence number of the live log it is laid out for. */
  log: number;
  /** Where in that log it goes: the end of its valid records. */
  offset: number;
  /** The change's version. */
  version: number;
  /** The sealed change record. */
  record: Uint8Array;
  /** The seal record that ends log `log` at `offset`, when the client rolls. */
  seal?: Uint8Array;
}

interface LiveRecord {
  offset: number;
  version: number;
}

function notALockFile(path: string): Error {
  return new Error(
    `Cannot open backup: "${path}" is not a regular file (a symlink?): remove it, the ` +
      `writer makes a new one`,
  );
}

/** Opens `LOCK`, never through a symlink (which could lead out of the backup). */
function openLockFile(path: string): Deno.FsFile {
  let before: Deno.FileInfo | undefined;
  try {
    before = Deno.lstatSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (before && !before.isFile) throw notALockFile(path);
  const lock = Deno.openSync(path, { read: true, write: true, create: true });
  // Swapped for something else between the check and the open: refuse it too.
  const opened = lock.statSync();
  const now = Deno.lstatSync(path);
  if (!opened.isFile || !now.isFile || opened.ino !== now.ino || opened.dev !== now.dev) {
    lock.close();
    throw notALockFile(path);
  }
  return lock;
}

/** Another process holds a backup's write lock. */
export class BackupLockedError extends Error {
  constructor(readonly dir: string, holder = "a running lightningd's plugin") {
    super(`Cannot open backup: another process is writing to "${dir}" (${holder}?): stop it first`);
    this.name = "BackupLockedError";
  }
}

/** Takes the backup's write lock, or says who holds it. */
function lockDir(dir: string, holder?: string): Deno.FsFile {
  const lock = openLockFile(`${dir}/${LOCK_NAME}`);
  // Released with an unlock (flock.ts), a lock never looks held after its release.
  if (!tryLock(lock)) throw new BackupLockedError(dir, holder);
  return lock;
}

/**
 * The live log was unlinked (an `rm -rf` of the backup, a cleanup job) while the writer held it
 * open: every append would still "succeed" into a file no one can read once it is closed.
 */
class LiveLogRemovedError extends Error {
  /** `dir`: the lightning dir as a shell word. */
  constructor(path: string, url: string, dir: string) {
    super(
      `Cannot write backup: "${path}" was removed while it was being written to: the backup ` +
        `is gone; with lightningd stopped, make a new one from the node's database: for the ` +
        `node's only backup, move backup.lock aside, then run ` +
        `"${
          cliCommand("init", `--lightning-dir ${dir} ${shellQuote(url)}`)
        }"; for one of several destinations, remove it from backup.lock ` +
        `(backend_url must name one that holds every change), then add a new copy with ` +
        newCopyCommand(dir),
    );
    this.name = "LiveLogRemovedError";
  }
}

/** Runs one I/O step; its error names the file it failed on (ENOSPC, EIO). */
function onFile<T>(path: string, step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (error instanceof CorruptBackupError || error instanceof LiveLogRemovedError) throw error;
    throw new Error(
      `Cannot write backup file "${path}": ${(error as Error).message}: free space or fix ` +
        `the disk, then restart lightningd`,
      { cause: error },
    );
  }
}

/**
 * A backup directory opened for writing, locked against other writers: each change is appended to
 * its live log and synced before {@linkcode FileBackend.append} returns.
 */
export class FileBackend implements Backend, CompactableBackend {
  #failure: Error | undefined;
  #live!: Deno.FsFile;
  #livePath = "";
  #liveSequence = 0;
  #liveEnd = 0;
  /** The live log's size: zeros from {@linkcode #liveEnd} on (see ZEROED_AHEAD_BYTES). */
  #liveSize = 0;
  #liveRecords: LiveRecord[] = [];
  #tail: Tail | undefined;
  /** Version of the backup before the live segment's first record. */
  #versionBeforeLive = 0;
  #baseVersion = 0;
  #records = 0;
  /**
   * Bytes of the bases, of the newest base, of the sealed logs, and of the sealed logs from
   * the one the newest base continues in (what the next compaction folds; the policy weighs
   * these, not the logs kept for older bases).
   */
  #basesBytes = 0;
  #bases: Segment[] = [];
  #newestBaseBytes = 0;
  #sealedLogBytes = 0;
  /** The sealed logs from the one the newest base continues in: bytes, and version sealed at. */
  #foldableLogs: { bytes: number; version: number }[] = [];
  /** Records of each sealed log, by sequence, so a compaction's deletes can be counted. */
  #sealedLogRecords = new Map<number, number>();
  #backupId: Uint8Array = new Uint8Array();
  /** Seals the live log's records, in an encrypted backup. */
  #cipher: RecordCipher | undefined;
  /** The key id of an encrypted backup's segments (held with or without the key). */
  #keyId: Uint8Array | undefined;
  /** The lightning dir as a shell word, which advice names. */
  #lightningDir = "DIR";
  readonly #unlinkCheck: UnlinkCheck;

  private constructor(
    readonly url: string,
    readonly dir: string,
    readonly segmentBytes: number,
    readonly syncOnClose: boolean,
    readonly lock: Deno.FsFile,
    /** An encrypted backup's data key (a compaction needs it too). */
    readonly key: DataKey | undefined,
    readonly keyless: boolean,
  ) {
    this.#unlinkCheck = new UnlinkCheck(dir);
  }

  /**
   * Opens a backup directory for writing. A torn tail is left in place and shown in
   * {@linkcode state}: only the node's version can tell it from a damaged last change.
   */
  static open(url: string, dir: string, options: FileBackendOptions = {}): FileBackend {
    const lock = lockDir(dir, options.lockHolder);
    try {
      const backend = new FileBackend(
        url,
        dir,
        options.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
        options.syncOnClose ?? false,
        lock,
        options.key,
        options.keyless ?? false,
      );
      if (options.lightningDir !== undefined) {
        backend.#lightningDir = shellQuote(options.lightningDir);
      }
      backend.#load(options.log ?? (() => {}));
      return backend;
    } catch (error) {
      releaseLock(lock);
      throw error;
    }
  }

  /** The backup's id, which every segment carries. */
  get backupId(): Uint8Array {
    return this.#backupId;
  }

  backupIdHex(): Promise<string> {
    return Promise.resolve(formatBackupId(this.#backupId));
  }

  /** The sequence of the log being appended to. */
  get liveSequence(): number {
    return this.#liveSequence;
  }

  /** The id of the key an encrypted backup's segments name; `undefined` for a plain one. */
  get keyId(): Uint8Array | undefined {
    return this.#keyId;
  }

  /**
   * Whether a write failed for want of room (ENOSPC, EDQUOT), after which it refuses every
   * other: opened again once room is made, the backup reads as that write left it. Any other
   * failure is final: after a failed fsync (EIO) the kernel may drop pages that reads still
   * show, so a change read back could be lost.
   */
  get outOfRoom(): boolean {
    return this.#failure !== undefined && isOutOfRoom(this.#failure);
  }

  /** Where the next record goes: the live log and the end of its valid records. */
  place(): { log: number; offset: number } {
    return { log: this.#liveSequence, offset: this.#liveEnd };
  }

  #load(log: (message: string) => void): void {
    for (const name of finishDeletion(this.dir)) {
      log(`deleted "${name}", which an interrupted compaction had planned to delete`);
    }
    const chain = readChain(this.dir);
    checkKey(chain, this.key, !this.keyless);
    // Changes go on top of the newest base: one cut short would restore nothing.
    const newest = chain.bases.at(-1);
    if (newest) checkBaseEnd(newest);
    this.#backupId = chain.backupId;
    this.#keyId = chain.keyId;
    // A compaction builds its database in a `.tmp` directory. key.json's is a rekey's, which
    // may be writing it now (rekey runs beside the plugin): its rename would fail. A rekey
    // killed before its rename leaves one, which the next rekey's write replaces.
    const rekeys = `${this.dir}/${WRAPPED_KEY_NAME}.tmp`;
    for (const tmp of chain.temporaries) {
      if (tmp !== rekeys) Deno.removeSync(tmp, { recursive: true });
    }
    this.#countBases(chain);
    let version = this.#baseVersion;
    let previous: number | undefined;
    let liveSequence: number | undefined;
    const records = scanLogs(chain, chain.start, scanWith(this.key, false));
    let step = records.next();
    for (; !step.done; step = records.next()) {
      const { offset, header: record, log: { path, number } } = step.value;
      checkFollows(previous, this.#baseVersion, { version: record.version, path, offset });
      if (number !== liveSequence) {
        liveSequence = number;
        this.#versionBeforeLive = version;
        this.#liveRecords = [];
      }
      previous = record.version;
      version = Math.max(version, record.version);
      this.#records++;
      this.#liveRecords.push({ offset, version: record.version });
      this.#sealedLogRecords.set(number, (this.#sealedLogRecords.get(number) ?? 0) + 1);
    }
    const { live, tail, abandoned } = step.value;
    this.#sealedLogRecords.delete(live.number);
    if (live.number !== liveSequence) {
      this.#versionBeforeLive = version;
      this.#liveRecords = [];
    }
    this.#countSealedLogs(chain.logs, live.number);
    if (abandoned) {
      Deno.removeSync(abandoned.path);
      syncDir(this.dir);
      log(`removed "${abandoned.path}", an empty log a crash left while it was being started`);
    }
    if (tail.tornBytes > 0) {
      this.#tail = { path: live.path, offset: tail.end, bytes: tail.tornBytes };
    }
    this.#live = openSegment(live.path, true);
    this.#livePath = live.path;
    this.#liveSequence = live.number;
    this.#cipher = this.#cipherOf(live.number);
    this.#liveEnd = tail.end;
    this.#liveSize = this.#live.statSync().size;
  }

  /**
   * Where the backup stands, with the bytes its files hold (the live log up to its last record, and
   * any torn tail).
   */
  state(): BackupState & { bytes: number } {
    const last = this.#liveRecords.at(-1);
    const beforeLast = this.#liveRecords.at(-2)?.version ?? this.#versionBeforeLive;
    const version = Math.max(this.#baseVersion, last?.version ?? this.#versionBeforeLive);
    return {
      version,
      rewindVersion: last && last.version > this.#baseVersion
        ? Math.max(beforeLast, this.#baseVersion)
        : undefined,
      records: this.#records,
      bytes: this.#basesBytes + this.#sealedLogBytes + this.#liveEnd + (this.#tail?.bytes ?? 0),
      tail: this.#tail,
      ...(this.#keyId ? { encrypted: true } : {}),
    };
  }

  append(change: Change): Promise<void> {
    this.#refuseTail();
    if (this.#keyId && !this.key) {
      throw new Error(
        `Cannot write backup: "${this.dir}" is encrypted, and only its key can seal a change`,
      );
    }
    this.#guard(() => {
      const payload = storePayload(change.version, encodeStatements(change.statements));
      const full = this.#liveEnd + recordLength(payload, this.#cipher) > this.segmentBytes;
      if (this.#liveRecords.length > 0 && full) this.#roll();
      // Framed after the roll: a sealed record is bound to its segment and offset.
      const record = frameRecord(RecordKind.Change, change.version, payload, this.#sealAt());
      this.#writeLive(record, change.version);
    });
    return Promise.resolve();
  }

  /**
   * Appends a change its client sealed for the place it names (a backup server's encrypted
   * backup, whose key it never holds): one that names another place is refused, as the
   * client's associated data binds it there. The caller checks the records' headers.
   */
  appendSealed(append: SealedAppend): Promise<void> {
    this.#refuseTail();
    const { log, offset } = this.place();
    if (!this.#keyId || append.log !== log || append.offset !== offset) {
      throw new Error(
        `Cannot write backup: a sealed change laid out for offset ${append.offset} of log ` +
          `${append.log}, where the next record goes at offset ${offset} of log ${log}` +
          (this.#keyId ? "" : " of a plain backup"),
      );
    }
    this.#guard(() => {
      if (append.seal) this.#roll(append.seal);
      this.#writeLive(append.record, append.version);
    });
    return Promise.resolve();
  }

  #refuseTail(): void {
    if (this.#tail) {
      const { path, offset, bytes } = this.#tail;
      throw new Error(
        `Cannot write backup: ${bytes} bytes at offset ${offset} of "${path}" fail their ` +
          `checks: a torn record to cut, or a damaged change; the node's version decides first`,
      );
    }
  }

  /** One write of a whole record to the live log, synced before it returns. */
  #writeLive(record: Uint8Array, version: number): void {
    onFile(this.#livePath, () => {
      // Test-only (see crash_point.ts): `undefined` unless a crash test armed it.
      const crash = crashPoint?.next();
      if (crash === "before-write") crashNow();
      const end = this.#liveEnd + record.length;
      if (end > this.#liveSize) this.#zeroAhead(end);
      this.#live.seekSync(this.#liveEnd, Deno.SeekMode.Start);
      if (crash === "mid-write") {
        writeAll(this.#live, record.subarray(0, record.length >> 1));
        crashNow();
      }
      writeAll(this.#live, record);
      this.#liveSize = Math.max(this.#liveSize, end);
      if (crash === "after-write-before-sync") crashNow();
      if (!this.syncOnClose) this.#live.syncDataSync();
      // Before the change counts as stored, and so before the hook is answered `continue`.
      this.#refuseRemoved();
      this.#liveRecords.push({ offset: this.#liveEnd, version });
      this.#liveEnd += record.length;
      this.#records++;
      if (crash === "after-sync-before-answer") crashNow();
    });
  }

  /**
   * Refuses to go on once the live log is no longer linked (st_nlink 0): removed, it took
   * every write (zeros ahead included) and keeps nothing. On NFS a removed file still open
   * lives on as `.nfsXXXX`, with a link: this check does not fire there (nor falsely).
   */
  #refuseRemoved(): void {
    if (this.#unlinkCheck.unlinked(this.#live, this.#livePath)) {
      throw new LiveLogRemovedError(this.#livePath, this.url, this.#lightningDir);
    }
  }

  /**
   * Grows the live log with zeros, before a record that ends at `end` is written into them:
   * to 1 MiB past it, or to the roll. The append's one fdatasync makes both durable. A copy
   * that syncs only on close has no fdatasync to save. Zeros that do not fit (a full disk)
   * are taken back: the record is then appended as it would be without them, and only its
   * own failure stops the node.
   */
  #zeroAhead(end: number): void {
    if (this.syncOnClose) return;
    const size = Math.max(end, Math.min(end + ZEROED_AHEAD_BYTES, this.segmentBytes));
    try {
      this.#live.seekSync(this.#liveSize, Deno.SeekMode.Start);
      for (let at = this.#liveSize; at < size; at += ZEROS.length) {
        writeAll(this.#live, ZEROS.subarray(0, Math.min(ZEROS.length, size - at)));
      }
      this.#liveSize = size;
    } catch {
      this.#live.truncateSync(this.#liveSize);
    }
  }

  rewind(): Promise<void> {
    this.#guard(() => {
      const last = this.#liveRecords.at(-1);
      if (!last || this.state().rewindVersion === undefined) {
        throw new Error("Cannot rewind backup: its last change is not one that can be dropped");
      }
      onFile(this.#livePath, () => {
        this.#live.truncateSync(last.offset);
        this.#live.syncDataSync();
      });
      this.#liveSize = last.offset;
      this.#liveRecords.pop();
      this.#liveEnd = last.offset;
      this.#records--;
      this.#tail = undefined;
      // The dropped record stays validly sealed for its place in whatever copy of the log the
      // storage kept; the change that replaces it, sealed for that same place, could be
      // swapped for it without a trace. So the log is sealed there and the next change
      // starts the next log: no place ever holds two records that open.
      if (this.#cipher) this.#roll();
    });
    return Promise.resolve();
  }

  /**
   * Makes the appends so far durable, without blocking the thread (a `syncOnClose` backup's:
   * an async copy's, whose syncs must not hold up the hooks on the same thread).
   */
  async flush(): Promise<void> {
    try {
      await this.#live.syncData();
    } catch (error) {
      this.#failure = error as Error;
      throw error;
    }
  }

  cutTail(): Promise<string> {
    const tail = this.#tail;
    if (!tail) return Promise.resolve("no torn tail to cut");
    this.#guard(() => {
      onFile(tail.path, () => {
        this.#live.truncateSync(tail.offset);
        this.#live.syncSync();
      });
      this.#liveSize = tail.offset;
      this.#tail = undefined;
    });
    return Promise.resolve(
      `cut ${tail.bytes} torn bytes at offset ${tail.offset} of "${tail.path}": a crash ` +
        `interrupted an append, which was never acknowledged`,
    );
  }

  /**
   * Seals the live segment and starts the next one. The next log is made (durably) before
   * the seal is written: a sealed log always has its successor, so a missing one is damage.
   */
  #roll(sealed?: Uint8Array): void {
    // A removed live log would be sealed in the void: its successor would hold the only
    // records left, in a directory whose first log is gone.
    onFile(this.#livePath, () => this.#refuseRemoved());
    const sequence = this.#liveSequence + 1;
    const name = logName(sequence);
    onFile(
      `${this.dir}/${name}`,
      () => writeFileDurably(this.dir, name, this.#logHeader(sequence)),
    );
    onFile(this.#livePath, () => {
      // A sealed log ends in its seal (chain.ts reads it from the last bytes): no zeros after.
      // The cut is made durable first: synced with the seal, a power cut could keep the seal's
      // bytes and lose the cut, leaving zeros after the seal.
      if (this.#liveSize > this.#liveEnd) {
        this.#live.truncateSync(this.#liveEnd);
        this.#live.syncDataSync();
      }
      this.#live.seekSync(this.#liveEnd, Deno.SeekMode.Start);
      writeAll(
        this.#live,
        sealed ??
          encodeRecord(RecordKind.Seal, this.state().version, encodeSeal(sequence), this.#sealAt()),
      );
      this.#live.syncDataSync();
    });
    atStep("roll");
    this.#live.close();
    const bytes = Deno.statSync(this.#livePath).size;
    this.#sealedLogBytes += bytes;
    this.#foldableLogs.push({ bytes, version: this.state().version });
    this.#sealedLogRecords.set(this.#liveSequence, this.#liveRecords.length);
    this.#versionBeforeLive = this.state().version;
    this.#livePath = `${this.dir}/${name}`;
    this.#live = Deno.openSync(this.#livePath, { read: true, write: true });
    this.#liveSequence = sequence;
    this.#cipher = this.#cipherOf(sequence);
    this.#liveEnd = this.#liveSize = SEGMENT_HEADER_SIZE;
    this.#liveRecords = [];
  }

  /**
   * Takes note of what a compaction changed beside the live log (a new base; deleted bases
   * and sealed logs), from segment headers and sizes: no scan on the hook's thread. Then
   * trims the live log when the new base continues in it.
   */
  compacted(): void {
    const chain = readChain(this.dir);
    this.#countBases(chain);
    this.#trimLive(chain);
    const held = new Set(chain.logs.map((l) => l.number));
    for (const [sequence, records] of this.#sealedLogRecords) {
      if (held.has(sequence)) continue;
      this.#records -= records;
      this.#sealedLogRecords.delete(sequence);
    }
    this.#countSealedLogs(chain.logs, this.#liveSequence);
  }

  /** Counts the bytes of the sealed `logs` (those below the live one, `liveSequence`). */
  #countSealedLogs(logs: Segment[], liveSequence: number): void {
    const from = this.#bases.at(-1)?.header.firstLog ?? 0;
    this.#sealedLogBytes = 0;
    this.#foldableLogs = [];
    for (const log of logs) {
      if (log.number >= liveSequence) continue;
      const size = Deno.statSync(log.path).size;
      this.#sealedLogBytes += size;
      if (log.number < from) continue;
      // Its seal's version, from the log's last bytes (no scan).
      this.#foldableLogs.push({ bytes: size, version: sealedVersion(log) ?? Infinity });
    }
  }

  /**
   * Drops from the live log the changes that the only base holds, when that base continues
   * in it: a compaction of a backup whose live log held every change since the base before
   * (a small, young or idle node's) would otherwise free nothing. The records from the
   * base's version on (the newest change among them, so the one rewind stays possible) are
   * copied into a new log of the same number, synced, and renamed over the live log. Only the
   * writer changes the live log, so this runs on its thread, between appends; it copies at
   * most {@linkcode TRIM_MAX_BYTES}, else it leaves the log to be sealed and freed later.
   */
  #trimLive(chain: Chain): void {
    // An older base kept for point-in-time restores needs the changes between it and this.
    // Sealed records are bound to their offsets, so an encrypted log is not copied shifted.
    if (chain.bases.length !== 1 || this.#tail || this.#failure || this.#keyId) return;
    const base = chain.bases[0];
    if (base.header.firstLog !== this.#liveSequence) return;
    const keep = this.#liveRecords.findIndex((r) => r.version >= base.number);
    if (keep <= 0) return;
    const from = this.#liveRecords[keep].offset;
    if (this.#liveEnd - from > TRIM_MAX_BYTES) return;
    const name = logName(this.#liveSequence);
    const tmp = `${this.dir}/${name}.tmp`;
    try {
      const source = openSegment(this.#livePath);
      const kept = readAt(source, from, this.#liveEnd - from);
      source.close();
      // Made anew, not opened: a symlink at that name would take the log where it points.
      removeIfExists(tmp);
      const out = Deno.openSync(tmp, { write: true, createNew: true });
      try {
        writeAll(out, this.#logHeader(this.#liveSequence));
        writeAll(out, kept);
        out.syncSync();
      } finally {
        out.close();
      }
      ownLike(tmp, this.#livePath);
      atStep("compact-trim");
    } catch {
      // Out of space, say: the live log is untouched, and stays as it was.
      removeIfExists(tmp);
      return;
    }
    // From the rename on, appends must go to the new file, and a failure is final (#guard).
    this.#guard(() => {
      onFile(this.#livePath, () => {
        Deno.renameSync(tmp, this.#livePath);
        this.#live.close();
        this.#live = Deno.openSync(this.#livePath, { read: true, write: true });
        syncDir(this.dir);
      });
    });
    const shift = from - SEGMENT_HEADER_SIZE;
    this.#records -= keep;
    this.#liveRecords = this.#liveRecords.slice(keep)
      .map(({ offset, version }) => ({ offset: offset - shift, version }));
    this.#liveEnd -= shift;
    this.#liveSize = this.#liveEnd;
    this.#versionBeforeLive = base.number;
  }

  #countBases(chain: Chain): void {
    const sizes = chain.bases.map(({ path }) => Deno.statSync(path).size);
    this.#bases = chain.bases;
    this.#baseVersion = chain.bases.at(-1)?.number ?? 0;
    this.#newestBaseBytes = sizes.at(-1) ?? 0;
    this.#basesBytes = sizes.reduce((a, b) => a + b, 0);
  }

  /** The version a compaction folds up to: the one before the newest change. */
  compactionTarget(): number | undefined {
    return this.state().rewindVersion;
  }

  /**
   * Bytes and versions held (`versionCount`: each change, each base once), from the
   * writer's counts, as a reader's `heldStats` counts them by scanning: a
   * compaction reports them before and after.
   */
  heldStats(): CompactionStats {
    return heldStats(this.state().bytes, {
      changes: this.#records,
      snapshots: this.#bases.length,
    });
  }

  /**
   * The newest base's bytes and the sealed logs' after it, which the compaction policy
   * weighs; with `upTo`, the logs a compaction folding up to that version can fold.
   */
  compactionSizes(upTo = Infinity): CompactionSizes {
    let sealedLogBytes = 0;
    for (const log of this.#foldableLogs) if (log.version <= upTo) sealedLogBytes += log.bytes;
    return { baseBytes: this.#newestBaseBytes, sealedLogBytes };
  }

  #logHeader(sequence: number): Uint8Array {
    return encodeSegmentHeader({
      kind: SegmentKind.Log,
      number: sequence,
      backupId: this.#backupId,
      firstLog: 0,
      keyId: this.#keyId,
    });
  }

  #cipherOf(sequence: number): RecordCipher | undefined {
    return this.key &&
      segmentCipher(this.key, {
        backupId: this.#backupId,
        kind: SegmentKind.Log,
        number: sequence,
        firstLog: 0,
      });
  }

  /** Where the next record of the live log goes, when its records are sealed. */
  #sealAt() {
    return this.#cipher && { cipher: this.#cipher, offset: this.#liveEnd };
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

  /**
   * A backup at rest ends at its last record: the zeros are a running writer's. Bytes anyone
   * else wrote after the records stay, for the next open to show. A tidy-up, left unsynced
   * and allowed to fail: zeros that stay or come back after a crash are read as nothing.
   */
  #cutZeros(): void {
    try {
      const size = this.#live.statSync().size;
      if (
        size > this.#liveEnd &&
        dataEnd(this.#live, this.#liveEnd, size, this.#livePath) === this.#liveEnd
      ) {
        this.#live.truncateSync(this.#liveEnd);
      }
    } catch {
      // Left as they are.
    }
  }

  /** Closes the live log, unless a roll or a trim failed after closing it, before the next. */
  #closeLive(): void {
    try {
      this.#live?.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  /**
   * Closes the live log, synced first with `syncOnClose`, and releases the directory's lock; the
   * zeros kept ahead of its records are cut when the log ends cleanly.
   */
  close(): void {
    try {
      if (!this.#failure && !this.#tail) this.#cutZeros();
      if (this.syncOnClose && !this.#failure) this.#live?.syncDataSync();
    } finally {
      try {
        this.#closeLive();
      } finally {
        // Whatever the live log did: the lock outlives no backend.
        releaseLock(this.lock);
      }
    }
  }
}

/**
 * Creates the first, empty log segment of a new backup directory; `keyId` names the data key
 * of an encrypted backup.
 */
export function createEmptyLog(dir: string, backupId: Uint8Array, keyId?: Uint8Array): void {
  writeFileDurably(
    dir,
    logName(1),
    encodeSegmentHeader({ kind: SegmentKind.Log, number: 1, backupId, firstLog: 0, keyId }),
  );
}
