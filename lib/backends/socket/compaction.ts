/**
 * `backup-compact` for a `socket:` backup: the server compacts its backup (COMPACT, then
 * COMPACT_RES), on a connection of its own, while the plugin's writes go on over theirs. An
 * encrypted backup is compacted here instead, where the key is, on a worker thread
 * (sealed_compaction.ts), in `cln-backup-scratch` in the lightning dir.
 *
 * @module
 */
import type { CompactionResult } from "../../compact/compact.ts";
import type { CompactStats } from "../../wire/packets.ts";
import {
  type CompactionService,
  type CompactionStatus,
  notingLast,
} from "../../compact/compactor.ts";
import type { SocketBackend } from "./backend.ts";
import { SCRATCH_DIR } from "../plugin_scratch.ts";
import { removeStaleWork, type SealedCompactionRequest } from "./sealed_compaction.ts";
import type { SealedCompactionMessage } from "./sealed_compaction_worker.ts";

/**
 * A server's COMPACT_RES as a compaction's result. A Python server answers only `before` and
 * `after`; the other fields are then what they say: the sizes' change, and `seconds`, the
 * time the client waited. Its base's version is not known (`null`).
 */
export function completedStats(stats: CompactStats, seconds: number): CompactionResult {
  const { before, after } = stats;
  return {
    ...stats,
    base_version: (stats.base_version as number | null | undefined) ?? null,
    versions_folded: (stats.versions_folded as number | undefined) ??
      before.version_count - after.version_count,
    bytes_freed: (stats.bytes_freed as number | undefined) ??
      before.backupsize - after.backupsize,
    seconds: (stats.seconds as number | undefined) ?? seconds,
  };
}

export class RemoteCompaction implements CompactionService {
  /** No setting has an effect: the server compacts on request only. */
  ignores(): string {
    return 'the backup is on a server, which compacts it only when "lightning-cli ' +
      'backup-compact" asks, keeping one base';
  }

  #running: Promise<CompactionResult> | undefined;
  #target = 0;
  #last: CompactionStatus["last"] = null;
  #stopping = new AbortController();
  #worker: Worker | undefined;

  constructor(
    readonly backend: SocketBackend,
    /** Milliseconds, monotonic (a seam for tests). */
    readonly now: () => number = () => performance.now(),
    /** Where an encrypted backup's compaction works: in the lightning dir (the plugin's cwd). */
    readonly scratch: string = `${Deno.cwd()}/${SCRATCH_DIR}`,
  ) {}

  /** Asks the server to compact, or joins the request under way. */
  compact(): Promise<CompactionResult> {
    if (this.#running) return this.#running;
    const started = this.now();
    const state = this.backend.state();
    this.#target = state.rewindVersion ?? state.version;
    const sealed = this.backend.sealedCompaction(this.#target, this.scratch);
    const work: Promise<CompactStats> = sealed
      ? this.#onWorker(sealed).then((result) => ({ ...result }))
      : this.backend.compactOnServer(this.#stopping.signal);
    const asked = work.then((stats) =>
      completedStats(stats, Math.round(this.now() - started) / 1000)
    );
    const running = notingLast(asked, (last) => this.#last = last)
      .finally(() => this.#running = undefined);
    this.#running = running;
    return running;
  }

  /** Runs an encrypted backup's compaction on a worker of its own. */
  #onWorker(request: SealedCompactionRequest): Promise<CompactionResult> {
    removeStaleWork(request.scratch);
    const worker = this.#worker = new Worker(
      new URL("./sealed_compaction_worker.ts", import.meta.url),
      { type: "module" },
    );
    return new Promise<CompactionResult>((resolve, reject) => {
      const abort = () =>
        reject(new Error("Cannot compact backup: the plugin is stopping; nothing changed"));
      this.#stopping.signal.addEventListener("abort", abort);
      worker.onmessage = ({ data }: MessageEvent<SealedCompactionMessage>) => {
        if (data.kind === "done") resolve(data.result);
        else reject(new Error(data.message));
      };
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`Cannot compact backup: its worker failed (${event.message})`));
      };
      worker.postMessage(request);
    }).finally(() => {
      worker.terminate();
      if (this.#worker === worker) this.#worker = undefined;
    });
  }

  /** Never: the server's sizes are not known here. */
  maybeCompact(): undefined {
    return undefined;
  }

  due(): boolean {
    return false;
  }

  status(): CompactionStatus {
    return {
      running: this.#running
        ? { target: this.#target, phase: "on the server", version: this.#target }
        : null,
      last: this.#last,
      next_due_at_bytes: null,
      sealed_log_bytes: null,
    };
  }

  /**
   * Stops waiting: the server finishes or drops its compaction on its own; a compaction made
   * here stops (a base not yet uploaded is dropped, its scratch removed at the next one).
   */
  stop(): void {
    this.#worker?.terminate();
    this.#stopping.abort();
    this.#stopping = new AbortController();
  }
}
