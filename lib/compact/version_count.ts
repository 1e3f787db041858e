/**
 * The one rule for `version_count` in a compaction's result ({@linkcode CompactionStats}),
 * which every backend's compaction reports through {@linkcode heldStats}.
 *
 * @module
 */
import type { CompactionStats } from "./compact.ts";

/**
 * The Python plugin's `version_count`: its `.dbak` takes one record per change and one per
 * snapshot (`add_change`), so a backup of `changes` changes on top of `snapshots` snapshots
 * holds `changes + snapshots`. A snapshot stored in many parts (1 MiB each) counts once, and
 * a log's seal, which only ends a log, is no change.
 */
export function versionCount(changes: number, snapshots: number): number {
  return changes + snapshots;
}

/** {@linkcode CompactionStats} of `backupsize` bytes holding `changes` and `snapshots`. */
export function heldStats(
  backupsize: number,
  held: { changes: number; snapshots: number },
): CompactionStats {
  return { backupsize, version_count: versionCount(held.changes, held.snapshots) };
}
