/**
 * Holds automatic compaction back for a while after a compaction failed: it would fail again
 * at the next hook (a full disk, a launcher without its scratch directory), with a worker
 * started and a log line each time. `backup-compact` still tries at once.
 *
 * @module
 */

/** How long the automatic policy leaves a backup alone after its compaction failed. */
export const RETRY_AFTER_FAILURE_MS = 10 * 60_000;

/** Holds automatic compaction back for ten minutes after a failure; `backup-compact` is not. */
export class RetryGate {
  #failedAt: number | undefined;

  /** Times failures with `now`, milliseconds, monotonic (a seam for tests). */
  constructor(readonly now: () => number = () => performance.now()) {}

  /** Whether the automatic policy may start a compaction now. */
  get open(): boolean {
    return this.#failedAt === undefined || this.now() - this.#failedAt >= RETRY_AFTER_FAILURE_MS;
  }

  /** Notes how the last compaction ended. */
  settled(ok: boolean): void {
    this.#failedAt = ok ? undefined : this.now();
  }
}
