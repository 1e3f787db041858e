/**
 * The plugin's compaction options (dynamic: `lightning-cli setconfig NAME VALUE` changes them
 * without a restart) and the policy they make.
 *
 * @module
 */
import { type CompactionPolicy, DEFAULT_POLICY } from "../compact/policy.ts";
import type { OptionSpec, OptionValue } from "./options.ts";

const MIB = 1024 * 1024;

export const COMPACTION_OPTIONS: readonly OptionSpec[] = [{
  name: "backup-compact-auto",
  type: "bool",
  default: DEFAULT_POLICY.auto,
  dynamic: true,
  description: "Compact the backup by itself, in the background, when the logs outgrow the " +
    "newest snapshot (backup-compact-ratio, backup-compact-min-mib)",
}, {
  name: "backup-compact-ratio",
  type: "int",
  default: DEFAULT_POLICY.ratioPercent,
  min: 1,
  dynamic: true,
  description: "Compact once the sealed logs after the newest snapshot reach this percentage " +
    "of its size",
}, {
  name: "backup-compact-min-mib",
  type: "int",
  default: DEFAULT_POLICY.minBytes / MIB,
  min: 0,
  dynamic: true,
  description: "...and at least this many MiB",
}, {
  name: "backup-retain-snapshots",
  type: "int",
  default: DEFAULT_POLICY.retain,
  min: 1,
  dynamic: true,
  description: "Snapshots a compaction of a file backup keeps, each with the changes after " +
    "it: restore --to-version works from the oldest one on (S3 and server backups keep one)",
}];

/** The policy setting each option sets. */
export const POLICY_SETTING: ReadonlyMap<string, keyof CompactionPolicy> = new Map([
  ["backup-compact-auto", "auto"],
  ["backup-compact-ratio", "ratioPercent"],
  ["backup-compact-min-mib", "minBytes"],
  ["backup-retain-snapshots", "retain"],
]);

/** The policy the options in force make. */
export function compactionPolicy(get: (name: string) => OptionValue | undefined): CompactionPolicy {
  const number = (name: string, fallback: number) => {
    const value = get(name);
    return typeof value === "number" ? value : fallback;
  };
  return {
    auto: get("backup-compact-auto") !== false,
    ratioPercent: number("backup-compact-ratio", DEFAULT_POLICY.ratioPercent),
    minBytes: number("backup-compact-min-mib", DEFAULT_POLICY.minBytes / MIB) * MIB,
    retain: number("backup-retain-snapshots", DEFAULT_POLICY.retain),
  };
}
