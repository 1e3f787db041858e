/**
 * `backup-compact` and automatic compaction for an `s3://` backup: {@linkcode compactS3} on
 * a worker thread, beside the plugin's writes.
 *
 * The hand-over: the writer holds its packer off (a pack would read the change objects the
 * compaction deletes) and goes on storing changes, each a new object after the newest; the
 * compaction folds the records up to the one before the newest it lists, so it never
 * touches an object the writer may still supersede (a rewind). When it is done the writer
 * forgets the change objects it deleted, packs again, and counts the backup anew.
 *
 * @module
 */
import type { CompactionPhase, CompactionResult } from "../../compact/compact.ts";
import {
  type CompactionService,
  type CompactionStatus,
  compactionStatus,
} from "../../compact/compactor.ts";
import { compactionDue, type CompactionPolicy } from "../../compact/policy.ts";
import { RetryGate } from "../../compact/retry_gate.ts";
import type { S3Credentials } from "./client.ts";
import type { S3RetryPolicy } from "./retry.ts";
import type { S3Backend } from "./backend.ts";

/** What the worker is asked to compact. */
export interface S3CompactionRequest {
  url: string;
  credentials: S3Credentials;
  /**
   * The keys' file's keys when the compaction starts, taken once S3 refuses `credentials`
   * (a worker cannot be handed the writer's way of reading them again).
   */
  renewed?: S3Credentials;
  policy: S3RetryPolicy;
  scratch: string;
  /** An encrypted backup's data key, as bytes: a worker cannot be handed the key object. */
  keyBytes?: Uint8Array;
}

/** What the worker reports. */
export type S3CompactionMessage =
  | { kind: "progress"; phase: CompactionPhase; version: number }
  | { kind: "done"; result: CompactionResult }
  | { kind: "failed"; message: string };

export class S3Compaction implements CompactionService {
  #running: Promise<CompactionResult> | undefined;
  #progress: NonNullable<CompactionStatus["running"]> | undefined;
  #last: CompactionStatus["last"] = null;
  #worker: Worker | undefined;
  #abandon: ((error: Error) => void) | undefined;

  constructor(
    readonly backend: S3Backend,
    readonly policy: () => CompactionPolicy,
    /** Where the worker may write its temporary files: in the lightning dir. */
    readonly scratch: string,
    readonly gate: RetryGate = new RetryGate(),
  ) {}

  /** An S3 backup keeps one base: its policy but for retention applies. */
  ignores(setting: keyof CompactionPolicy): string | undefined {
    return setting === "retain"
      ? "an S3 backup keeps one base, the newest compaction's (retention is for a file backup)"
      : undefined;
  }

  /**
   * Starts a compaction, or joins the one running; resolves with its result (`base_version`
   * null when nothing but the newest change follows the newest base).
   */
  compact(): Promise<CompactionResult> {
    if (this.#running) return this.#running;
    // Shown while it starts: the compaction folds up to the object before the newest it lists.
    const state = this.backend.state();
    const target = state.rewindVersion ?? state.version;
    this.#progress = { target, phase: "starting", version: target };
    const running = new Promise<CompactionResult>((resolve, reject) => {
      this.#abandon = reject;
      this.#run(resolve, reject);
    }).then((result) => {
      this.#last = { ok: true, ...result };
      this.gate.settled(true);
      return result;
    }, (error: Error) => {
      this.#last = { ok: false, error: error.message };
      this.gate.settled(false);
      throw error;
    }).finally(() => {
      this.#running = undefined;
      this.#progress = undefined;
      this.#abandon = undefined;
    });
    this.#running = running;
    return running;
  }

  async #run(
    resolve: (result: CompactionResult) => void,
    reject: (error: Error) => void,
  ): Promise<void> {
    try {
      await this.backend.ready();
    } catch (error) {
      reject(new Error(`Cannot compact backup: ${(error as Error).message}`));
      return;
    }
    await this.backend.pausePacking();
    const worker = this.#worker = new Worker(
      new URL("./compaction_worker.ts", import.meta.url),
      { type: "module" },
    );
    const finish = async (settle: () => void) => {
      worker.terminate();
      this.#worker = undefined;
      await this.backend.compacted();
      settle();
    };
    worker.onmessage = ({ data }: MessageEvent<S3CompactionMessage>) => {
      if (data.kind === "progress") {
        this.#progress = { ...this.#progress!, phase: data.phase, version: data.version };
      } else if (data.kind === "done") {
        finish(() => resolve(data.result));
      } else {
        const message = data.message.startsWith("Cannot ")
          ? data.message
          : `Cannot compact backup: ${data.message}`;
        finish(() => reject(new Error(message)));
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      finish(() =>
        reject(
          new Error(
            `Cannot compact backup: its worker failed (${event.message}); nothing is lost: ` +
              `the next compaction deletes what this one left`,
          ),
        )
      );
    };
    worker.postMessage(
      {
        url: this.backend.url,
        credentials: this.backend.client.credentials,
        renewed: this.#fileKeys(),
        policy: this.backend.policy,
        scratch: this.scratch,
        keyBytes: this.backend.options.key?.bytes,
      } satisfies S3CompactionRequest,
    );
  }

  /** The keys the writer would read again now; none when it has no way, or they do not read. */
  #fileKeys(): S3Credentials | undefined {
    try {
      return this.backend.client.renew?.();
    } catch {
      // The worker goes on with the keys held, which the writer uses too.
      return undefined;
    }
  }

  /** Starts one when the bytes after the newest base outgrow it as the policy says. */
  maybeCompact(): Promise<CompactionResult> | undefined {
    return this.due() ? this.compact() : undefined;
  }

  due(): boolean {
    return !this.#running && this.gate.open &&
      compactionDue(this.policy(), this.backend.compactionSizes());
  }

  status(): CompactionStatus {
    return compactionStatus(this.policy(), this.backend.compactionSizes(), {
      running: this.#progress ?? null,
      last: this.#last,
    });
  }

  /**
   * Stops a running compaction: what it left, the next one deletes (in S3, and in the
   * scratch directory).
   */
  stop(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#abandon?.(
      new Error("Cannot compact backup: the plugin is stopping; the next compaction cleans up"),
    );
  }
}
