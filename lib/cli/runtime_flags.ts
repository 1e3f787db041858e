/**
 * The Deno flags, other than permissions, of every process cln-backup starts for an
 * operator: the plugin's launcher and binary, `backup-cli` and the `deno task`s.
 *
 * V8 lets a busy isolate's young generation grow to 32 MiB a semi-space (a short run that
 * keeps some of what it allocates ends with 64 MiB of new space). The plugin's resident
 * memory stepped up that way with its first compactions, each in a worker of its own, and
 * stayed there after they ended. Measured on one 2-core VM, a million `db_write`s to one
 * plugin with compactions by the default policy: 139 MiB after them against 62.9 after the
 * first 5,000 without the flag; 72.8 against 58.9 with 2 MiB, 69.6 against 56.5 with 1 MiB.
 * 2 MiB because 1 MiB made a compaction of a million changes 10 to 14% slower (2 MiB: 3%).
 * A restore of a million changes peaked at 110 MiB without the flag, 103 with it. The hook's
 * p50 and p99 did not change beyond the runs' noise.
 *
 * @module
 */

/** Keeps V8's young generation at 2 MiB a semi-space. */
export const RUNTIME_FLAGS: readonly string[] = ["--v8-flags=--max-semi-space-size=2"];
