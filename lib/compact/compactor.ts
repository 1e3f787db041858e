/**
 * Runs compactions for the plugin, off the hook's path.
 *
 * The hand-over between the writer (the plugin's thread) and the compactor (a worker): the
 * writer names the target, the version before its newest change, and goes on appending; the
 * worker reads only sealed segments and the live log below that target, which the writer
 * never changes again (a rewind drops only the newest change, above the target), writes the
 * new base and deletes what it covers, never the live log. When it is done, the writer takes
 * note of the files that changed, on its own thread between two appends, and when the new
 * base continues in the live log it trims that log to the records from the base on
 * ({@linkcode CompactableBackend.compacted}). A roll during a compaction only seals the live
 * log, which holds the newest change and so is never deleted. Nothing of a compaction reads
 * the backup on the plugin's thread: the sizes before and after come from the writer's
 * counts.
 *
 * @module
 */
import type {
  CompactionPhase,
  CompactionResult,
  CompactionStats,
  CompactionWork,
} from "./compact.ts";
import { compactionResult } from "./result.ts";
import { RetryGate } from "./retry_gate.ts";
import { compactionDue, type CompactionPolicy, type CompactionSizes, dueAt } from "./policy.ts";

/** What the worker is asked to do. */
export interface CompactionRequest {
  /** The backup's URL. */
  url: string;
  /** The backup directory to compact. */
  dir: string;
  /** Fold every change up to this version. */
  target: number;
  /** Bases to keep, each with the logs after it. */
  retain: number;
  /** An encrypted backup's data key: the compaction reads and seals records with it. */
  key?: Uint8Array;
}

/** What the worker reports. */
export type WorkerMessage =
  | { kind: "progress"; phase: CompactionPhase; version: number }
  | { kind: "done"; work: CompactionWork }
  | { kind: "failed"; message: string };

/** The writer's side of the hand-over. */
export interface CompactableBackend {
  /** The URL the backup was opened from. */
  readonly url: string;
  /** The backup directory a compaction works in. */
  readonly dir: string;
  /** An encrypted backup's data key. */
  readonly key?: { bytes: Uint8Array };
  /** The version before the newest change, `undefined` when nothing is on top of a base. */
  compactionTarget(): number | undefined;
  /**
   * The newest base's bytes and the sealed logs' after it, which the policy weighs; with
   * `upTo`, only the logs a compaction folding up to that version can fold.
   */
  compactionSizes(upTo?: number): CompactionSizes;
  /** Bytes and records held, without reading the backup. */
  heldStats(): CompactionStats;
  /** Takes note of the segments a compaction added and deleted; trims the live log. */
  compacted(): void;
}

/** A thread that runs one compaction request; a seam so tests can run it in-process. */
export interface CompactionThread {
  /** Starts the compaction `request` asks for; what it reports goes to `onMessage`. */
  run(request: CompactionRequest, onMessage: (message: WorkerMessage) => void): void;
  /** Ends the thread, cutting short a compaction still running. */
  stop(): void;
}

/** The real thread: a Worker running worker.ts. */
function workerThread(): CompactionThread {
  let worker: Worker | undefined;
  return {
    run(request, onMessage) {
      worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      worker.onmessage = (event: MessageEvent<WorkerMessage>) => onMessage(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        onMessage({ kind: "failed", message: `the compaction worker failed: ${event.message}` });
      };
      worker.postMessage(request);
    },
    stop() {
      worker?.terminate();
      worker = undefined;
    },
  };
}

/** What `backup-status` shows of compaction. */
export interface CompactionStatus {
  /** A server's compaction shows phase `"on the server"`: its progress is not sent. */
  running: {
    target: number;
    phase: CompactionPhase | "starting" | "on the server";
    version: number;
  } | null;
  /** The last compaction's result, or why it failed; `null` before the first. */
  last: (CompactionResult & { ok: true }) | { ok: false; error: string } | null;
  /** Sealed-log bytes at which the plugin compacts by itself (`null` when it does not). */
  next_due_at_bytes: number | null;
  /** `null` for a backup on a server, whose sizes the plugin does not see. */
  sealed_log_bytes: number | null;
  /** Several destinations: each one's compaction (see lib/backends/multi/compaction.ts). */
  destinations?: DestinationCompactionStatus[];
}

/** One of several destinations' compaction, as `backup-status` shows it. */
export interface DestinationCompactionStatus extends CompactionStatus {
  /** The destination's URL. */
  url: string;
  /** An asynchronous copy (backup.lock's `async_urls`). */
  async: boolean;
  /** Why it is not compacted now (broken, not open, or an async copy still needs it). */
  held: string | null;
}

/** `running`, whose outcome `note` takes as the last one `backup-status` shows. */
export function notingLast(
  running: Promise<CompactionResult>,
  note: (last: CompactionStatus["last"]) => void,
): Promise<CompactionResult> {
  return running.then((result) => {
    note({ ok: true, ...result });
    return result;
  }, (error: Error) => {
    note({ ok: false, error: error.message });
    throw error;
  });
}

/** A status with the policy's view of when the next compaction is due. */
export function compactionStatus(
  policy: CompactionPolicy,
  sizes: CompactionSizes,
  now: Pick<CompactionStatus, "running" | "last">,
): CompactionStatus {
  return {
    ...now,
    next_due_at_bytes: policy.auto ? dueAt(policy, sizes) : null,
    sealed_log_bytes: sizes.sealedLogBytes,
  };
}

/** Compaction as the plugin sees it, wherever it runs. */
export interface CompactionService {
  /** Starts a compaction or joins the running one; resolves with its result. */
  compact(): Promise<CompactionResult>;
  /** Starts one when the policy says it is due, and returns it; never waits for it. */
  maybeCompact(): Promise<CompactionResult> | undefined;
  /** None runs, and the policy says one is due. */
  due(): boolean;
  /** What `backup-status` shows of compaction now. */
  status(): CompactionStatus;
  /** Stops a running compaction, for the plugin's close. */
  stop(): void;
  /** Why the policy's `setting` has no effect on it, when it has none. */
  ignores?(setting: keyof CompactionPolicy): string | undefined;
}

/**
 * Runs compactions of a {@linkcode CompactableBackend} on a worker thread, one at a time, when the
 * policy or a caller asks.
 */
export class Compactor implements CompactionService {
  #running: Promise<CompactionResult> | undefined;
  #progress: NonNullable<CompactionStatus["running"]> | undefined;
  #last: CompactionStatus["last"] = null;
  #thread: CompactionThread | undefined;
  /** Settles the running compaction's promise when it is stopped from outside. */
  #abandon: ((error: Error) => void) | undefined;

  /**
   * Compacts `backend` as `policy` says; `newThread` runs each compaction (a worker unless a test
   * gives one), and `gate` holds automatic ones back after a failure.
   */
  constructor(
    readonly backend: CompactableBackend,
    readonly policy: () => CompactionPolicy,
    readonly newThread: () => CompactionThread = workerThread,
    readonly gate: RetryGate = new RetryGate(),
  ) {}

  /** Whether a compaction runs now. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /**
   * Starts a compaction, or joins the one running; resolves with its result. Rejects when
   * the compaction failed; the backup is untouched then.
   *
   * It starts at once, whether the node writes or not: when the live log holds every change
   * since the newest base, the writer trims it afterwards, so all but the newest change is
   * freed, as the Python plugin's compaction did.
   */
  compact(): Promise<CompactionResult> {
    if (this.#running) return this.#running;
    const target = this.backend.compactionTarget();
    let before: CompactionStats;
    try {
      before = this.backend.heldStats();
    } catch (error) {
      return Promise.reject(new Error(`Cannot compact backup: ${(error as Error).message}`));
    }
    if (target === undefined) {
      // A base and no change on top: nothing to fold, answered with the sizes as the CLI's
      // compact answers it; an operator's `lightning-cli backup-compact` run is no failure.
      const result = compactionResult(before, before, {
        base_version: null,
        versions_folded: 0,
        seconds: 0,
      });
      this.#last = { ok: true, ...result };
      return Promise.resolve(result);
    }
    const running = new Promise<CompactionResult>((resolve, reject) => {
      this.#abandon = reject;
      this.#run(target, before, resolve, reject);
    });
    this.#running = running;
    return running;
  }

  #run(
    target: number,
    before: CompactionStats,
    resolve: (result: CompactionResult) => void,
    reject: (error: Error) => void,
  ): void {
    const thread = this.#thread = this.newThread();
    this.#progress = { target, phase: "starting", version: target };
    thread.run(
      {
        url: this.backend.url,
        dir: this.backend.dir,
        target,
        retain: this.policy().retain,
        key: this.backend.key?.bytes,
      },
      (message) => {
        if (message.kind === "progress") {
          this.#progress = { target, phase: message.phase, version: message.version };
          return;
        }
        thread.stop();
        this.#thread = undefined;
        this.#running = undefined;
        this.#progress = undefined;
        this.#abandon = undefined;
        let failure = message.kind === "failed" ? message.message : undefined;
        let result: CompactionResult | undefined;
        try {
          // Whatever the outcome, files may have changed (a failed compaction can still
          // have finished its deletes).
          this.backend.compacted();
          if (message.kind === "done") {
            result = compactionResult(before, this.backend.heldStats(), message.work);
          }
        } catch (error) {
          failure ??= `Cannot compact backup: ${(error as Error).message}`;
        }
        this.gate.settled(result !== undefined && failure === undefined);
        if (result && failure === undefined) {
          this.#last = { ok: true, ...result };
          resolve(result);
        } else {
          this.#last = { ok: false, error: failure! };
          reject(new Error(failure));
        }
      },
    );
  }

  /** Starts a compaction when the policy says one is due, and returns it. */
  maybeCompact(): Promise<CompactionResult> | undefined {
    return this.due() ? this.compact() : undefined;
  }

  due(): boolean {
    return !this.#running && this.gate.open &&
      compactionDue(this.policy(), this.backend.compactionSizes());
  }

  /** The running compaction's progress, the last one's outcome, and when the next is due. */
  status(): CompactionStatus {
    return compactionStatus(this.policy(), this.backend.compactionSizes(), {
      running: this.#progress ?? null,
      last: this.#last,
    });
  }

  /** Stops a running compaction; what it left is finished or cleaned on the next open. */
  stop(): void {
    this.#thread?.stop();
    this.#thread = undefined;
    this.#running = undefined;
    this.#progress = undefined;
    this.#abandon?.(
      new Error("Cannot compact backup: the plugin is stopping; the next open cleans up"),
    );
    this.#abandon = undefined;
  }
}
