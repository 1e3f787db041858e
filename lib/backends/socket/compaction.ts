/**
 * `backup-compact` for a `socket:` backup: the server compacts its backup (COMPACT, then
 * COMPACT_RES), on a connection of its own, while the plugin's writes go on over theirs.
 *
 * @module
 */
import type { CompactionResult } from "../../compact/compact.ts";
import {
  type CompactionService,
  type CompactionStatus,
  notingLast,
} from "../../compact/compactor.ts";
import type { SocketBackend } from "./backend.ts";

export class RemoteCompaction implements CompactionService {
  #running: Promise<CompactionResult> | undefined;
  #target = 0;
  #last: CompactionStatus["last"] = null;
  #stopping = new AbortController();

  constructor(
    readonly backend: SocketBackend,
    /** Milliseconds, monotonic (a seam for tests). */
    readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Asks the server to compact, or joins the request under way. A Python server answers
   * only `before` and `after`; the other fields are then what they say: the sizes' change,
   * and the time the client waited.
   */
  compact(): Promise<CompactionResult> {
    if (this.#running) return this.#running;
    const started = this.now();
    const state = this.backend.state();
    this.#target = state.rewindVersion ?? state.version;
    const asked = this.backend.compactOnServer(this.#stopping.signal).then((stats) => {
      const { before, after } = stats;
      const result: CompactionResult = {
        ...stats,
        base_version: (stats.base_version as number | null | undefined) ?? null,
        versions_folded: (stats.versions_folded as number | undefined) ??
          before.version_count - after.version_count,
        bytes_freed: (stats.bytes_freed as number | undefined) ??
          before.backupsize - after.backupsize,
        seconds: (stats.seconds as number | undefined) ?? Math.round(this.now() - started) / 1000,
      };
      return result;
    });
    const running = notingLast(asked, (last) => this.#last = last)
      .finally(() => this.#running = undefined);
    this.#running = running;
    return running;
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

  /** Stops waiting: the server finishes or drops its compaction on its own. */
  stop(): void {
    this.#stopping.abort();
    this.#stopping = new AbortController();
  }
}
