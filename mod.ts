/**
 * cln-backup's library surface: what another Deno program may import to read, write or
 * restore Core Lightning database backups, or to embed the plugin.
 *
 * @example Restore the newest state of a backup
 * ```ts
 * import { openReader, restoreBackup } from "./mod.ts";
 * restoreBackup(openReader("file:///var/backups/node1"), "/tmp/lightningd.sqlite3");
 * ```
 *
 * @module
 */
export type {
  Backend,
  BackupDescription,
  BackupEntry,
  BackupReader,
  BackupState,
  Change,
  ConnectionStatus,
} from "./lib/backends/backend.ts";
export { connectBackend, connectReader, openBackend, openReader } from "./lib/backends/open.ts";
export { SocketBackend, type SocketBackendOptions } from "./lib/backends/socket/backend.ts";
export { SocketBackupReader } from "./lib/backends/socket/reader.ts";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./lib/backends/socket/options.ts";
export { BackupServer, type ServerOptions } from "./lib/server/server.ts";
export { ServerStorage } from "./lib/server/storage.ts";
export { type BackupUrl, BackupUrlError, parseBackupUrl } from "./lib/backends/url.ts";
export { FileBackend, type FileBackendOptions } from "./lib/backends/file/writer.ts";
export { FileBackupReader } from "./lib/backends/file/reader.ts";
export { V1BackupReader } from "./lib/backends/v1/reader.ts";
export { createFileBackup, type SnapshotSource } from "./lib/backends/file/create.ts";
export { CorruptBackupError } from "./lib/format/segment.ts";
export { bumpedFrom } from "./lib/backup/bump.ts";
export { checkFirstWrite, type VersionVerdict } from "./lib/backup/version_check.ts";
export { type LockFile, readLockFile, writeLockFile } from "./lib/backup/lock_file.ts";
export { restoreBackup, type RestoreOptions, type RestoreResult } from "./lib/backup/restore.ts";
export {
  compactBackup,
  type CompactionResult,
  type CompactOptions,
} from "./lib/compact/compact.ts";
export { type CompactionService, Compactor } from "./lib/compact/compactor.ts";
export { type CompactionPolicy, DEFAULT_POLICY } from "./lib/compact/policy.ts";
export { BackupPlugin, type PluginContext } from "./lib/plugin/backup_plugin.ts";
export { type PluginStreams, serve } from "./lib/plugin/stdio.ts";
