/**
 * The plugin's `socket:` and `s3://` destinations: opening one at start, fetching a remote
 * primary for async copies to catch up from, and each one's compaction service. startup.ts
 * loads this module only when backup.lock names such a destination, so that a plugin on file
 * backups, the common case, never evaluates their clients at start (TLS and SOCKS5, wire v2's
 * codecs, S3's client and its compaction): with compaction's own code, left to its worker,
 * they were 13 to 16% of its CPU from spawn to the `getmanifest` answer (README,
 * Performance). Loaded by a string literal, so that it needs no read permission and
 * `deno compile` includes it.
 *
 * @module
 */
import type { Backend, BackupReader } from "../backends/backend.ts";
import type { LockFile } from "../backup/lock_file.ts";
import type { DataKey } from "../crypto/data_key.ts";
import type { LogLevel } from "./jsonrpc.ts";
import type { StartupOptions } from "./startup.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { SocketBackend } from "../backends/socket/backend.ts";
import { SocketBackupReader } from "../backends/socket/reader.ts";
import { credentialIn } from "../backends/socket/credential.ts";
import { retryPolicyFromLock } from "../backends/socket/options.ts";
import { RemoteCompaction } from "../backends/socket/compaction.ts";
import { S3Backend } from "../backends/s3/backend.ts";
import { S3BackupReader } from "../backends/s3/reader.ts";
import { loadCredentials } from "../backends/s3/credentials.ts";
import { s3PolicyFromLock } from "../backends/s3/retry.ts";
import { S3Compaction } from "../backends/s3/compaction_service.ts";
import type { CompactionService } from "../compact/compactor.ts";
import type { CompactionPolicy } from "../compact/policy.ts";

export { credentialIn };

/** Opens a remote destination, logging that it connects (or lists) in the background. */
export function openRemote(
  url: string,
  scheme: "socket" | "s3",
  lock: LockFile,
  dir: string,
  key: DataKey | undefined,
  options: StartupOptions,
  log: { level: LogLevel; message: string }[],
): Backend {
  if (scheme === "socket") {
    const backend = SocketBackend.open(url, {
      policy: retryPolicyFromLock(lock),
      log: options.remoteLog,
      credential: credentialIn(dir),
      key,
      segmentBytes: options.segmentBytes,
      signal: options.signal,
    });
    log.push({
      level: "info",
      message: `Backup "${url}" is on the server at ${backend.destination}: connecting; the ` +
        `first database write waits for the server's version and is checked against it`,
    });
    return backend;
  }
  const backend = S3Backend.open(url, {
    credentials: loadCredentials(dir),
    renewCredentials: () => loadCredentials(dir),
    policy: s3PolicyFromLock(lock),
    log: options.remoteLog,
    packer: { every: options.packEvery },
    key,
    signal: options.signal,
    lightningDir: dir,
  });
  log.push({
    level: "info",
    message: `Backup "${url}"${key ? " (encrypted)" : ""} is in S3 ` +
      `(${backend.destination}): listing it; the first ` +
      `database write waits for its version and is checked against it`,
  });
  return backend;
}

/** Fetches backup.lock's remote primary, `backend_url`, into `scratch`. */
export function readRemotePrimary(
  lock: LockFile,
  dir: string,
  key: DataKey | undefined,
  scratch: string,
): Promise<BackupReader> {
  Deno.mkdirSync(scratch, { recursive: true });
  return parseBackupUrl(lock.backend_url).scheme === "s3"
    ? S3BackupReader.fetch(
      lock.backend_url,
      loadCredentials(dir),
      s3PolicyFromLock(lock),
      scratch,
      key && (() => Promise.resolve(key)),
    )
    : SocketBackupReader.fetch(
      lock.backend_url,
      retryPolicyFromLock(lock).timeoutMs,
      credentialIn(dir),
      scratch,
    );
}

/** `backend` is a `socket:` or `s3://` one, which has a compaction service of its own. */
export function isRemote(backend: Backend): boolean {
  return backend instanceof S3Backend || backend instanceof SocketBackend;
}

/** A remote backend's own compaction service; `undefined` for any other backend. */
export function remoteCompaction(
  backend: Backend,
  policy: () => CompactionPolicy,
  scratch: string,
): CompactionService | undefined {
  if (backend instanceof S3Backend) return new S3Compaction(backend, policy, scratch);
  if (backend instanceof SocketBackend) return new RemoteCompaction(backend);
  return undefined;
}
