/**
 * Compaction of one asynchronous copy (backup.lock's `async_urls`) with its destination's own
 * machinery (a file backup's compactor, an S3 backup's), on the copy's open destination.
 *
 * The copy's appends are the writer's side of that machinery's hand-over, as the plugin's are
 * for the primary: a compaction folds only below the copy's newest change, and the copy keeps
 * appending meanwhile. Before it starts, the copy's unsynced appends (a file copy syncs off
 * the hooks' thread) are synced, so the new base never covers changes a power cut could
 * take from under it. The destination stays open until the compaction ends
 * ({@linkcode AsyncCopy.withDestination}); a copy that failed and was reopened gets a service
 * of its own.
 *
 * @module
 */
import type { CompactionResult } from "../../compact/compact.ts";
import {
  type CompactionService,
  type CompactionStatus,
  notingLast,
} from "../../compact/compactor.ts";
import type { Backend } from "../backend.ts";
import type { AsyncCopy } from "./async_copy.ts";

export class AsyncCopyCompaction implements CompactionService {
  #dest: Backend | undefined;
  #service: CompactionService | undefined;
  #running: Promise<CompactionResult> | undefined;
  #last: CompactionStatus["last"] = null;
  #stopped = false;

  constructor(
    readonly copy: AsyncCopy,
    /** The compaction service of a destination of the copy's kind. */
    readonly serviceFor: (dest: Backend) => CompactionService | undefined,
  ) {}

  #serviceOf(dest: Backend): CompactionService | undefined {
    if (this.#dest !== dest) {
      this.#service?.stop();
      this.#dest = dest;
      this.#service = this.serviceFor(dest);
    }
    return this.#service;
  }

  compact(): Promise<CompactionResult> {
    if (this.#running) return this.#running;
    const running = this.copy.withDestination(async (dest) => {
      const service = this.#serviceOf(dest);
      if (service === undefined) {
        throw new Error(`Cannot compact backup: the plugin does not compact ${dest.url}`);
      }
      await dest.flush?.();
      if (this.#stopped) throw new Error("Cannot compact backup: the plugin is stopping");
      return await service.compact();
    });
    if (running === undefined) {
      return Promise.reject(
        new Error(
          `Cannot compact backup: the async copy is not open (${this.copy.status().state})`,
        ),
      );
    }
    this.#running = notingLast(running, (last) => this.#last = last)
      .finally(() => this.#running = undefined);
    return this.#running;
  }

  /** While the copy is open and copying (each hook feeds it, so it is rarely caught up then). */
  due(): boolean {
    const dest = this.copy.destination();
    return !this.#running && dest !== undefined && this.copy.status().state !== "failing" &&
      this.#serviceOf(dest)?.due() === true;
  }

  maybeCompact(): Promise<CompactionResult> | undefined {
    return this.due() ? this.compact() : undefined;
  }

  status(): CompactionStatus {
    const dest = this.copy.destination();
    const status = dest === undefined ? undefined : this.#serviceOf(dest)?.status();
    return {
      running: status?.running ?? null,
      last: this.#last,
      next_due_at_bytes: status?.next_due_at_bytes ?? null,
      sealed_log_bytes: status?.sealed_log_bytes ?? null,
    };
  }

  stop(): void {
    this.#stopped = true;
    this.#service?.stop();
  }
}
