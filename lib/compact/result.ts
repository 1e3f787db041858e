/**
 * A compaction's result as the plugin reports it, made on the writer's thread from its own
 * counts. A module of its own, so that the plugin's thread does not load the compaction
 * itself (compact.ts, the restore and node:sqlite), which runs on a worker.
 *
 * @module
 */
import type { CompactionResult, CompactionStats, CompactionWork } from "./compact.ts";

/** The full result, from the writer's sizes before and after a compaction and its work. */
export function compactionResult(
  before: CompactionStats,
  after: CompactionStats,
  work: CompactionWork,
): CompactionResult {
  return {
    before,
    after,
    base_version: work.base_version,
    versions_folded: work.versions_folded,
    bytes_freed: Math.max(0, before.backupsize - after.backupsize),
    seconds: work.seconds,
  };
}
