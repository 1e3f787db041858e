/**
 * The plugin's scratch directory, in the lightning dir: the one place its launcher lets it
 * write besides the file backups. An S3 compaction rebuilds the database and the new base
 * there (until uploaded), a server's compaction restores its fetch there, and async copies
 * fetch a remote primary there to catch up from. A module of its own, so that the plugin on a
 * file backup names it without loading the S3 code.
 *
 * @module
 */

export const SCRATCH_DIR = "cln-backup-scratch";
