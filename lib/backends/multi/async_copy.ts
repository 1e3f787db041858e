/**
 * One asynchronous destination (backup.lock's `async_urls`): a copy of the backup that is
 * never on the hook's path. The node never waits for it and never stops for it; it may be
 * behind, and says by how much.
 *
 * It copies only what the synchronous primary (`backend_url`) already made durable, from two
 * sources:
 *
 * - **in memory**: each change the primary stored in this run is handed over after its
 *   append returned ({@linkcode AsyncCopy.feed}) and queued, up to a bound (10,000 changes
 *   or 64 MiB); the copy appends them in order;
 * - **the primary itself**: at start (a restart, or a crash while the copy was behind), after
 *   an outage of the copy whose changes are no longer all queued, or once the queue overflowed,
 *   it reads the primary's backup (a reader, as restore does) and appends every change the
 *   copy lacks.
 *
 * A copy starts after the node's first write of the run, once the primary's version check
 * has decided (the primary may drop its last change there). Its own last change may be one
 * the primary dropped before (a crash after the copy took a change the node never
 * committed), so at its first open in a run it drops its last change and copies it again
 * from the primary. An S3 copy's drop stores nothing (the next change takes the dropped one's
 * place), so one reopened before it stored a change shows the dropped change again, and drops it
 * again. A destination that fails is closed and opened again after a pause (0.5 s,
 * doubling up to `async_retry_s`), which reads where it stands: a write whose answer was
 * lost is found there and not copied twice. It logs the failure once, then once an hour while
 * it lasts: the primary keeps what the copy lacks, and grows.
 *
 * A file copy is written without a sync per change (a sync on the plugin's one thread would
 * hold up the next hook): it syncs off the thread once the queue is drained, every 1,000
 * changes, and at the end of a catch-up, and says it is caught up only after that sync. A
 * power cut before it loses at most what the next start copies again: the primary's
 * compaction keeps every change above the copy's last sync ({@linkcode AsyncCopy.resumesFrom}).
 *
 * Behind the primary, a copy appends what it lacks onto what it holds: it must be this backup's
 * copy. backup.lock ties each copy to its backup id when it is made (`backup_ids`), and a copy
 * found to hold another backup (another node's, a mount swapped) is refused before anything is
 * written or dropped there; a copy without a recorded id is not checked.
 *
 * Positions are versions. A change that bumps the version is copied once; a hook without a
 * bump (a migration's `PRAGMA foreign_keys`) repeats its version, so one at the copy's own
 * version may be copied again where the copy resumes: such a hook changes no data, and a
 * restore gives the same database.
 *
 * @module
 */
import type {
  AsyncDestinationStatus,
  Backend,
  BackupReader,
  Change,
  ConnectionStatus,
} from "../backend.ts";
import { bumpedFrom } from "../../backup/bump.ts";
import { launcherDenied } from "../../fs/launcher_denied.ts";
import { copyTieProblem, newCopyCommand } from "./mirrors.ts";

export type AsyncLogLevel = "info" | "unusual";

export interface AsyncCopyOptions {
  url: string;
  /** Opens the destination and resolves once its state is known. */
  open(): Promise<Backend>;
  /** The backup id backup.lock ties the copy to (`backup_ids`); none: not checked. */
  backupId?: string;
  /** The lightning dir as a shell word, which advice names (`DIR` where not known). */
  dir?: string;
  /** The primary's backup as it stands now, to catch up from. */
  readPrimary(): Promise<BackupReader>;
  /** The primary's version now. */
  primaryVersion(): number;
  log(level: AsyncLogLevel, message: string): void;
  /** Longest pause between attempts while failing, in milliseconds (default 30 s). */
  maxRetryMs?: number;
  /** Most changes queued in memory; beyond, the copy catches up from the primary. */
  queueLimit?: number;
  /**
   * Milliseconds on a clock that only goes forward (test seam; default `performance.now`):
   * only spans are measured, and the wall clock may be stepped (NTP, a machine without a
   * real-time clock booting at an old date).
   */
  now?: () => number;
}

const FIRST_RETRY_MS = 500;
const BEHIND_RETRY_MS = 5_000;
/** How often a destination that still fails says so again. */
const REMIND_MS = 3_600_000;
const QUEUE_LIMIT = 10_000;
/** Changes a busy copy appends between two syncs. */
const FLUSH_EVERY = 1_000;
const QUEUE_BYTES = 64 << 20;
/** Entries read from the primary between two yields to the hooks' event loop. */
const YIELD_EVERY = 64;

const yieldToHooks = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * A failure without its numbers (versions, seconds, tries), which change at each try of the
 * same failure.
 */
function failureKind(message: string): string {
  return message.replace(/\d+/g, "#");
}

function changeBytes(change: Change): number {
  return change.statements.reduce((sum, s) => sum + s.length, 0);
}

export class AsyncCopy {
  readonly url: string;
  #dest: Backend | undefined;
  #started = false;
  #closed = false;
  #running: Promise<void> | undefined;
  /** Changes the primary stored in this run that the copy may lack, oldest first. */
  #queue: Change[] = [];
  #queueBytes = 0;
  /** The queue lost changes (it overflowed): catch up from the primary. */
  #reread = false;
  /** The copy's last change was dropped once in this run (see the module's doc). */
  #settled = false;
  /**
   * The versions of that drop, until the copy stores a change after it: a destination whose
   * rewind stores nothing (S3: the next change supersedes the dropped one) shows the dropped
   * change again when it is reopened before then, and must drop it again.
   */
  #dropped: { version: number; rewindVersion: number } | undefined;
  #error: string | undefined;
  /** When the failure that started the outage came, and the last log line of it. */
  #failingSince = 0;
  #remindedAt = 0;
  /** The failures this outage logged, their numbers aside (see {@linkcode failureKind}). */
  #logged = new Set<string>();
  /** Since when the copy lacks something the primary holds. */
  #behindSince: number | undefined;
  #lastConnection: ConnectionStatus | null = null;
  /** The version the copy held when last open: a copy that is down still shows its lag. */
  #lastVersion: number | null = null;
  /** See {@linkcode AsyncCopy.resumesFrom}. */
  #resumesFrom: number | null = null;
  /** Changes appended since the copy last synced. */
  #unflushed = 0;
  #wake: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** A pending {@linkcode AsyncCopy.feed}'s start or wake-up. */
  #soon: ReturnType<typeof setTimeout> | undefined;
  /** A task on the open destination (its compaction): it stays open until the task ends. */
  #lease: Promise<void> | undefined;
  readonly #now: () => number;

  constructor(readonly options: AsyncCopyOptions) {
    this.url = options.url;
    this.#now = options.now ?? (() => performance.now());
    this.#behindSince = this.#now();
  }

  /** Takes a change the primary made durable; never waits. The first one starts the copy. */
  feed(change: Change): void {
    if (this.#closed) return;
    this.#behindSince ??= this.#now();
    if (
      !this.#reread &&
      (this.#queue.length >= (this.options.queueLimit ?? QUEUE_LIMIT) ||
        this.#queueBytes > QUEUE_BYTES)
    ) {
      this.#queue = [];
      this.#queueBytes = 0;
      this.#reread = true;
    }
    if (!this.#reread) {
      this.#queue.push(change);
      this.#queueBytes += changeBytes(change);
    }
    this.#nudge();
  }

  /**
   * Starts or wakes the copy in a later task: `feed` runs inside the hook, and the copy's
   * work (encoding, signing, a write) must not run before the hook's answer has gone out.
   */
  #nudge(): void {
    if (this.#soon !== undefined) return;
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      if (this.#closed) return;
      if (this.#started) return this.#wakeUp();
      this.#started = true;
      this.#running = this.#run();
    }, 0);
  }

  status(): AsyncDestinationStatus {
    const version = this.#dest?.state().version ?? this.#lastVersion;
    const caughtUp = this.#caughtUp();
    return {
      url: this.url,
      state: !this.#started
        ? "waiting"
        : this.#error !== undefined
        ? "failing"
        : caughtUp
        ? "caught-up"
        : "behind",
      version,
      lag_versions: version === null ? null : Math.max(0, this.options.primaryVersion() - version),
      // Caught up is no lag, though a change queued meanwhile may have started the clock.
      lag_seconds: caughtUp || this.#behindSince === undefined
        ? 0
        : Math.round(this.#now() - this.#behindSince) / 1000,
      error: this.#error ?? null,
      connection: this.#dest?.state().connection ?? this.#lastConnection,
    };
  }

  /**
   * The lowest version the copy may stand at when it is next opened, in this run or the next:
   * what it last synced (a power cut takes what it appended since), less its last change,
   * which the next start drops (see the module's doc). The primary must keep every change
   * above it. `null` before the copy is reached in this run.
   */
  resumesFrom(): number | null {
    return this.#resumesFrom;
  }

  #noteResumesFrom(dest: Backend): void {
    const { version, rewindVersion } = dest.state();
    this.#resumesFrom = Math.min(version, rewindVersion ?? version);
  }

  /** The destination while it is open. */
  destination(): Backend | undefined {
    return this.#closed ? undefined : this.#dest;
  }

  /**
   * Runs `task` on the open destination, beside the copying (its compaction: the hand-over
   * between the copy's appends and the compactor is the plugin's own, see compactor.ts). The
   * destination stays open until the task ends: a failure closes and reopens it only then,
   * so an open never cleans up after a compaction still running. `undefined` when the
   * destination is not open.
   */
  withDestination<T>(task: (dest: Backend) => Promise<T>): Promise<T> | undefined {
    if (this.#dest === undefined || this.#closed || this.#lease !== undefined) return;
    const running = task(this.#dest);
    const lease: Promise<void> = running.then(() => {}, () => {}).finally(() => {
      if (this.#lease === lease) this.#lease = undefined;
    });
    this.#lease = lease;
    return running;
  }

  /** Stops copying (what is not copied yet is copied from the primary at the next start). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#soon);
    this.#wakeUp();
    await this.#running;
    await this.#lease;
    this.#dest?.close();
    this.#dest = undefined;
  }

  /** Holds every change the primary holds, synced (a power cut takes what is not). */
  #caughtUp(): boolean {
    return this.#dest !== undefined && this.#queue.length === 0 && !this.#reread &&
      this.#unflushed === 0 && this.#dest.state().version === this.options.primaryVersion();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Waits for a feed (or close), or `ms` when given. */
  #pause(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      if (ms !== undefined) this.#timer = setTimeout(() => this.#wakeUp(), ms);
    });
  }

  async #run(): Promise<void> {
    const first = Math.min(FIRST_RETRY_MS, this.options.maxRetryMs ?? FIRST_RETRY_MS);
    let wait = first;
    while (!this.#closed) {
      try {
        await this.#step();
        wait = first;
      } catch (error) {
        if (this.#closed) return;
        await this.#lease;
        this.#fail(launcherDenied(error) ?? (error as Error).message);
        await this.#pause(wait);
        clearTimeout(this.#timer);
        wait = Math.min(wait * 2, this.options.maxRetryMs ?? 30_000);
      }
    }
  }

  #fail(message: string): void {
    const now = this.#now();
    const kind = failureKind(message);
    if (this.#error === undefined) {
      this.options.log(
        "unusual",
        `Async destination ${this.url} failed, the node goes on without waiting for it and ` +
          `it tries again: ${message}`,
      );
      this.#failingSince = this.#remindedAt = now;
    } else if (!this.#logged.has(kind)) {
      // A copy that is back but refuses the copy (another backup, a key, compacted past)
      // needs the operator now: not in an hour, nor as one of its backend's debug lines.
      this.options.log(
        "unusual",
        `Async destination ${this.url} fails otherwise now, the node goes on without it: ` +
          message,
      );
    } else if (now - this.#remindedAt >= REMIND_MS) {
      // One line at the start of an outage is easily missed, and the primary grows meanwhile.
      this.#remindedAt = now;
      this.options.log(
        "unusual",
        `Async destination ${this.url} still fails after ` +
          `${Math.floor((now - this.#failingSince) / REMIND_MS)} h, the node goes on without ` +
          `it; the primary keeps every change it lacks and is not compacted past them, so it ` +
          `grows until the copy works again or is removed from async_urls: ${message}`,
      );
    }
    this.#error = message;
    this.#logged.add(kind);
    this.#lastConnection = this.#dest?.state().connection ?? this.#lastConnection;
    this.#lastVersion = this.#dest?.state().version ?? this.#lastVersion;
    this.#dest?.close();
    this.#dest = undefined;
    this.#unflushed = 0;
  }

  #recovered(): void {
    if (this.#error === undefined) return;
    this.#error = undefined;
    this.#logged.clear();
    this.options.log("info", `Async destination ${this.url} works again, catching up`);
  }

  /** Opens the destination if needed, copies what it lacks, then waits for more. */
  async #step(): Promise<void> {
    const dest = this.#dest ?? await this.#open();
    if (!this.#covered(dest)) await this.#catchUp(dest);
    this.#recovered();
    while (this.#queue.length > 0 && !this.#closed) {
      const change = this.#queue[0];
      if (!this.#holds(dest, change)) await this.#copy(dest, change);
      this.#queue.shift();
      this.#queueBytes -= changeBytes(change);
    }
    await this.#flush(dest);
    if (this.#caughtUp()) {
      this.#behindSince = undefined;
      this.#recovered();
    }
    // Idle: wait for the next change; still behind (the primary's newest change was not
    // readable yet), look again soon.
    if (!this.#closed && this.#queue.length === 0 && !this.#reread) {
      await this.#pause(this.#caughtUp() ? undefined : BEHIND_RETRY_MS);
      clearTimeout(this.#timer);
    }
  }

  async #open(): Promise<Backend> {
    const dest = await this.options.open();
    try {
      const other = await copyTieProblem(dest, this.options.backupId, true, this.options.dir);
      if (other) throw new Error(other);
      // A torn append of the copy's own: the primary holds that change.
      if (dest.state().tail !== undefined) await dest.cutTail();
      const { version, rewindVersion } = dest.state();
      const dropped = this.#dropped;
      if (!this.#settled && rewindVersion !== undefined && rewindVersion < version) {
        await dest.rewind();
        this.#dropped = { version, rewindVersion };
        this.options.log(
          "info",
          `Async destination ${this.url}: dropped its last change ${version}, which the ` +
            `primary may have dropped since (the node did not commit it); copying it again`,
        );
      } else if (
        dropped !== undefined && version === dropped.version &&
        rewindVersion === dropped.rewindVersion
      ) {
        // Reopened before a change was stored after the drop, which did not last (S3).
        await dest.rewind();
        this.options.log(
          "info",
          `Async destination ${this.url}: holds again the change ${version} it dropped, as ` +
            `its rewind stores nothing until the next change; dropped it again`,
        );
      }
      this.#settled = true;
      if (dest.state().version > this.options.primaryVersion()) {
        throw new Error(
          `it is at version ${dest.state().version}, ahead of the primary at ` +
            `${this.options.primaryVersion()}: it is not a copy of this backup: with ` +
            `lightningd stopped, remove it from async_urls, then add a new copy with ` +
            newCopyCommand(this.options.dir, true),
        );
      }
      // What it holds may not be synced yet (a plugin killed before its copy's sync).
      await dest.flush?.();
      this.#noteResumesFrom(dest);
    } catch (error) {
      dest.close();
      throw error;
    }
    this.#dest = dest;
    // Still failing until it copies or has nothing to copy: a copy that opens but cannot catch
    // up (the primary was compacted past it) says so once, not once per try.
    return dest;
  }

  /** The queue holds every change the copy lacks. */
  #covered(dest: Backend): boolean {
    if (this.#reread) return false;
    const version = dest.state().version;
    const head = this.#queue[0];
    if (head === undefined) return version === this.options.primaryVersion();
    const before = bumpedFrom(head.statements) === undefined ? head.version : head.version - 1;
    return version >= before;
  }

  /**
   * The copy holds `change` already: a lower version, or the bump to its own version. A hook
   * without a bump at its version is copied (again, perhaps: it changes no data).
   */
  #holds(dest: Backend, change: Change): boolean {
    const version = dest.state().version;
    return change.version < version ||
      (change.version === version && bumpedFrom(change.statements) !== undefined);
  }

  async #copy(dest: Backend, change: Change): Promise<void> {
    const version = dest.state().version;
    if (change.version > version + 1) {
      throw new Error(
        `it is at version ${version} and the next change it has is ${change.version}: ` +
          `catching up from the primary`,
      );
    }
    await dest.append(change);
    this.#dropped = undefined;
    if (++this.#unflushed >= FLUSH_EVERY) await this.#flush(dest);
    this.#recovered();
  }

  /** Makes what the copy holds durable (a file copy syncs off the hooks' thread). */
  async #flush(dest: Backend): Promise<void> {
    if (this.#unflushed === 0) return;
    await dest.flush?.();
    this.#unflushed = 0;
    this.#noteResumesFrom(dest);
  }

  /** Appends every change of the primary's backup that the copy lacks. */
  async #catchUp(dest: Backend): Promise<void> {
    // Changes stored from here on are queued, and the reader may see them too.
    this.#reread = false;
    const reader = await this.options.readPrimary();
    try {
      const from = dest.state().version;
      let read = 0;
      for (const entry of reader.entries()) {
        if (this.#closed) return;
        if (++read % YIELD_EVERY === 0 || entry.kind === "snapshot-part") await yieldToHooks();
        if (entry.kind === "tail") break;
        if (entry.kind !== "change") {
          if (entry.version > dest.state().version) {
            throw new Error(
              `the primary keeps no changes below its snapshot at version ${entry.version}, ` +
                `above this copy's version ${dest.state().version} (it was compacted): with ` +
                `lightningd stopped, remove this copy from async_urls, then add a new copy ` +
                `with ${newCopyCommand(this.options.dir, true)}`,
            );
          }
          continue;
        }
        if (!this.#holds(dest, entry)) await this.#copy(dest, entry);
      }
      await this.#flush(dest);
      const to = dest.state().version;
      if (to > from) {
        this.options.log(
          "info",
          `Async destination ${this.url} caught up from the primary, versions ${from + 1} ` +
            `to ${to}`,
        );
      }
    } catch (error) {
      this.#reread = true;
      throw error;
    } finally {
      reader.close();
    }
  }
}
