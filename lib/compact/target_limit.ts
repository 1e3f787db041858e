/**
 * A writer whose compactions fold no further than a limit: a primary whose async copies
 * catch up from it must keep every change a copy still lacks (see
 * lib/plugin/compaction_for.ts).
 *
 * @module
 */
import type { CompactableBackend } from "./compactor.ts";

/** `backend`, with its compaction target at most `limit()` (no limit when `undefined`). */
export function limitTarget(
  backend: CompactableBackend,
  limit: () => number | undefined,
): CompactableBackend {
  return {
    url: backend.url,
    dir: backend.dir,
    key: backend.key,
    compactionTarget() {
      const target = backend.compactionTarget();
      const most = limit();
      return target === undefined || most === undefined ? target : Math.min(target, most);
    },
    // The policy weighs what it may fold: the logs a copy lacks made it due after each
    // change, every compaction folding little or nothing more.
    compactionSizes: () => backend.compactionSizes(limit()),
    heldStats: () => backend.heldStats(),
    compacted: () => backend.compacted(),
  };
}
