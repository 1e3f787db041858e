/**
 * Which segments a compaction makes redundant, and so may delete once its new base is durable.
 *
 * The same rule runs after a compaction and when the writer opens a backup, so files that a
 * crash left behind (after the new base was durable, before every delete) go on the next open.
 *
 * @module
 */
import { firstVersion } from "../format/log_start.ts";
import type { Layout } from "../format/layout.ts";

/** How many bases to keep (each with the logs after it), for point-in-time restores. */
export const DEFAULT_RETAIN_BASES = 1;

/**
 * The bases older than the newest `retain`, and the sealed logs that hold nothing above the
 * oldest base kept. A log's records never exceed the first record of the log after it, so
 * that record bounds it; the live log (the last) is never redundant.
 */
export function redundantSegments(
  layout: Layout,
  retain: number,
  first: (path: string) => number | undefined = firstVersion,
): string[] {
  if (layout.bases.length === 0) return [];
  const kept = layout.bases.slice(-Math.max(1, retain));
  const oldestKept = kept[0].version;
  const redundant = layout.bases.slice(0, layout.bases.length - kept.length).map((b) => b.path);
  for (let i = 0; i + 1 < layout.logs.length; i++) {
    const next = first(layout.logs[i + 1].path);
    if (next === undefined || next > oldestKept) break;
    redundant.push(layout.logs[i].path);
  }
  return redundant;
}
