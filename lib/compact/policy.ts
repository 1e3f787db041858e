/**
 * When the plugin compacts by itself: once the sealed logs outgrow the newest base by a
 * ratio, and a floor in bytes, so a small node does not compact after every segment.
 *
 * @module
 */

export interface CompactionPolicy {
  /** Compact by itself; `backup-compact` works either way. */
  auto: boolean;
  /** Sealed logs must reach this share of the newest base, in percent... */
  ratioPercent: number;
  /** ...and at least this many bytes. */
  minBytes: number;
  /** Bases to keep, each with the logs after it (point-in-time restores). */
  retain: number;
}

/** Compact by itself once the sealed logs reach the newest base's size and 64 MiB; keep 1 base. */
export const DEFAULT_POLICY: CompactionPolicy = {
  auto: true,
  ratioPercent: 100,
  minBytes: 64 * 1024 * 1024,
  retain: 1,
};

/** What a policy looks at: bytes in the newest base and in the sealed logs. */
export interface CompactionSizes {
  /** Bytes of the newest base. */
  baseBytes: number;
  /** Bytes of the sealed logs after the newest base (not those kept for older ones). */
  sealedLogBytes: number;
}

/** The sealed-log bytes at which the next compaction is due. */
export function dueAt(policy: CompactionPolicy, sizes: CompactionSizes): number {
  return Math.max(policy.minBytes, Math.ceil(sizes.baseBytes * policy.ratioPercent / 100));
}

export function compactionDue(policy: CompactionPolicy, sizes: CompactionSizes): boolean {
  // Without a sealed log a compaction frees nothing, whatever the thresholds.
  return policy.auto && sizes.sealedLogBytes > 0 && sizes.sealedLogBytes >= dueAt(policy, sizes);
}
