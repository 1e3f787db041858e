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
  AsyncDestinationStatus,
  Backend,
  BackupDescription,
  BackupEntry,
  BackupReader,
  BackupState,
  Change,
  ConnectionStatus,
  DestinationStatus,
  Tail,
} from "./lib/backends/backend.ts";
export { connectBackend, connectReader, openBackend, openReader } from "./lib/backends/open.ts";
export type { S3BackendOptions } from "./lib/backends/s3/backend.ts";
export type { PackerOptions } from "./lib/backends/s3/packer.ts";
export type { S3Log, S3RetryPolicy } from "./lib/backends/s3/retry.ts";
export type { SigningKeys } from "./lib/backends/s3/sigv4.ts";
export type { Unlock } from "./lib/backends/s3/reader.ts";
export type { WrappedKeyObject } from "./lib/backends/s3/key_object.ts";
export type { S3Url } from "./lib/backends/s3/s3_url.ts";
export {
  SocketBackend,
  type SocketBackendOptions,
  type SocketLogLevel,
} from "./lib/backends/socket/backend.ts";
export type { SocketUrl } from "./lib/backends/socket/connection.ts";
export type { NodeCredential } from "./lib/backends/socket/credential.ts";
export type { SealedCompactionRequest } from "./lib/backends/socket/sealed_compaction.ts";
export { SocketBackupReader, type Spooled } from "./lib/backends/socket/reader.ts";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./lib/backends/socket/options.ts";
export { BackupServer, type ServerLimits, type ServerOptions } from "./lib/server/server.ts";
export type { LogLevel as ServerLogLevel, Writer as ServerWriter } from "./lib/server/session.ts";
export type { NodeRegistry } from "./lib/server/nodes.ts";
export type { Held, InflateBudget } from "./lib/server/inflate_budget.ts";
export type { FailureKind as ServerFailureKind } from "./lib/server/log_limit.ts";
export type { NodeStats } from "./lib/server/metrics.ts";
export type { TlsIdentity } from "./lib/server/tls_identity.ts";
export { ServerStorage } from "./lib/server/storage.ts";
export type { BaseOwner } from "./lib/server/sealed_input.ts";
export type { VerifyReport } from "./lib/backup/verify.ts";
export type { CompactStats, Metadata } from "./lib/wire/packets.ts";
export type { Place, SealedChange } from "./lib/wire/packets_v2.ts";
export {
  type BackupUrl,
  BackupUrlError,
  parseBackupUrl,
  type TlsTrust,
} from "./lib/backends/url.ts";
export {
  FileBackend,
  type FileBackendOptions,
  type SealedAppend,
} from "./lib/backends/file/writer.ts";
export {
  FileBackupReader,
  type FileBackupReaderOptions,
  type StoredEntry,
} from "./lib/backends/file/reader.ts";
export type { DataKey, Primitives } from "./lib/crypto/data_key.ts";
export { V1BackupReader } from "./lib/backends/v1/reader.ts";
export {
  createFileBackup,
  type NewEncryption,
  type SnapshotSource,
} from "./lib/backends/file/create.ts";
export { CorruptBackupError } from "./lib/format/segment.ts";
export { bumpedFrom } from "./lib/backup/bump.ts";
export {
  type BackupVersions,
  checkFirstWrite,
  type FirstWrite,
  type VersionVerdict,
} from "./lib/backup/version_check.ts";
export { type BackupSetup } from "./lib/backup/setup_advice.ts";
export { type LockFile, readLockFile, writeLockFile } from "./lib/backup/lock_file.ts";
export { restoreBackup, type RestoreOptions, type RestoreResult } from "./lib/backup/restore.ts";
export {
  compactBackup,
  type CompactionPhase,
  type CompactionResult,
  type CompactionStats,
  type CompactionWork,
  type CompactOptions,
} from "./lib/compact/compact.ts";
export type { Pacer, Sleep } from "./lib/compact/pacer.ts";
export {
  type CompactableBackend,
  type CompactionRequest,
  type CompactionService,
  type CompactionStatus,
  type CompactionThread,
  Compactor,
  type DestinationCompactionStatus,
  type WorkerMessage,
} from "./lib/compact/compactor.ts";
export type { RetryGate } from "./lib/compact/retry_gate.ts";
export {
  type CompactionPolicy,
  type CompactionSizes,
  DEFAULT_POLICY,
} from "./lib/compact/policy.ts";
export { BackupPlugin, type PluginContext } from "./lib/plugin/backup_plugin.ts";
export type {
  JsonRpcError,
  JsonRpcId,
  JsonRpcOutgoing,
  JsonRpcRequest,
  LogLevel as PluginLogLevel,
  Parsed,
} from "./lib/plugin/jsonrpc.ts";
export type { OptionSpec, OptionType, OptionValue } from "./lib/plugin/options.ts";
export type { RpcMethod } from "./lib/plugin/methods.ts";
export { type PluginStreams, serve } from "./lib/plugin/stdio.ts";
