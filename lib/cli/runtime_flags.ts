/**
 * The Deno flags, other than permissions, of every process cln-backup starts for an
 * operator: the plugin's launcher and binary, `backup-cli` and the `deno task`s.
 *
 * V8 grows a busy isolate's young generation from 1 MiB to 16 MiB a semi-space, and keeps
 * the pages of every isolate that ever grew it (compaction workers, read-ahead workers) for
 * the life of the process. Measured on a million `db_write`s to one plugin, compactions
 * running by the default policy: 132 to 135 MiB resident from 300,000 writes on without
 * this flag, 69 to 72 MiB with it; a restore of a million changes peaked at 111 MiB
 * without and 98 MiB with it.
 *
 * @module
 */

/** Keeps V8's young generation at its starting size of 1 MiB a semi-space. */
export const RUNTIME_FLAGS: readonly string[] = ["--v8-flags=--max-semi-space-size=1"];
