/**
 * The plugin's check at start, before lightningd's first `db_write` (which comes before
 * `init`): `backup.lock` names a backup, the backup opens (its writer checks what it reads:
 * the format is one this version reads, the log's records pass their checks). It ends in
 * one line for lightningd's log: the backup's state, or why the plugin refuses every change
 * (then lightningd stops at its first database write, before it commits anything). A
 * `socket:` backup connects to its server in the background instead, so the plugin answers
 * `getmanifest` meanwhile: its first `db_write` waits for the connection.
 *
 * The version comparison with the node's database stays at the first `db_write`, where the
 * node's version is known (lib/backup/version_check.ts).
 *
 * @module
 */
import type { Backend } from "../backends/backend.ts";
import type { FileBackendOptions } from "../backends/file/writer.ts";
import { backupKind, EmptyBackupError, openBackend } from "../backends/open.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { type LockFile, readLockFile } from "../backup/lock_file.ts";
import { type BackupSetup, keyFileAdvice, newBackupAdvice } from "../backup/setup_advice.ts";
import { lockNumber } from "../backup/lock_number.ts";
import { MultiBackend } from "../backends/multi/backend.ts";
import {
  copyBackupIds,
  lockDestinations,
  mirrorFailure,
  newCopyCommand,
  untiedCopies,
} from "../backends/multi/mirrors.ts";
import { AsyncCopy } from "../backends/multi/async_copy.ts";
import { WithAsyncCopies } from "../backends/multi/with_async_copies.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { SCRATCH_DIR } from "../backends/plugin_scratch.ts";
import { CorruptBackupError, FormatTwoError } from "../format/segment.ts";
import { KEY_FILE, readKeyFile } from "../crypto/key_file.ts";
import type { DataKey } from "../crypto/data_key.ts";
import { BackupKeyError } from "../backends/file/encryption.ts";
import type { LogLevel } from "./jsonrpc.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { explainOsError } from "../fs/os_error.ts";
import { launcherDenied } from "../fs/launcher_denied.ts";
import { ownCode } from "../fs/own_code.ts";

/** The code of `socket:` and `s3://` destinations (remote_destinations.ts). */
export type RemoteDestinations = typeof import("./remote_destinations.ts");

export interface Startup {
  /** The open backup, or the one line saying why there is none. */
  backend: Backend | { error: string };
  /** What to log at start, in order: repairs made on open, then the state line. */
  log: { level: LogLevel; message: string }[];
  /** Loaded when backup.lock names a remote destination, for its compaction service. */
  remote?: RemoteDestinations;
  /** The set-up the version check's advice names; absent when backup.lock did not read. */
  setup?: BackupSetup;
}

/**
 * Why a damaged backup refuses the node, and what to do: the node's own database is fine. A
 * mirror is made anew with mirror (init refuses a node that has a backup), in the lightning
 * dir `copyIn`.
 */
function damaged(
  url: string,
  error: CorruptBackupError,
  setup: BackupSetup | undefined,
  copyIn?: string,
): string {
  return `Cannot start backup: "${url}" is damaged: ${error.where}, which no crash explains; ` +
    `lightningd must not run without its ` +
    `backup, so every database write is refused: ${remake(setup, copyIn)}, then start lightningd`;
}

/**
 * The backup (or, in the lightning dir `copyIn`, the copy) made anew from the node's
 * database: a copy with mirror, since init refuses a node that has a backup.
 */
function remake(setup: BackupSetup | undefined, copyIn: string | undefined): string {
  return copyIn === undefined
    ? newBackupAdvice(setup)
    : `with lightningd stopped, move it aside and remove it from backup.lock, then add a new ` +
      `copy with ${newCopyCommand(shellQuote(copyIn))}`;
}

export interface StartupOptions extends Pick<FileBackendOptions, "segmentBytes"> {
  /** Where a remote backup logs what happens later (reconnects, giving up). */
  remoteLog?: (level: LogLevel, message: string) => void;
  /** Test seam: an `s3://` backup packs once more than this many change objects wait. */
  packEvery?: number;
  /**
   * The plugin's lifetime (lib/backends/stopping.ts): a remote backup's waits end once it
   * aborts, so the plugin never outlives lightningd.
   */
  signal?: AbortSignal;
}

/**
 * A server (wire v1) takes plain backups only. `remote` is loaded whenever backup.lock names a
 * `socket:` destination.
 */
function refuseKey(
  url: string,
  dir: string,
  key: DataKey | undefined,
  remote: RemoteDestinations | undefined,
): void {
  // A server of wire v2 (the node has its credential) stores sealed changes it cannot read.
  if (key && parseBackupUrl(url).scheme === "socket" && !remote!.credentialIn(dir)) {
    throw new Error(
      `Cannot start backup: "${dir}/${KEY_FILE}" holds an encryption key, but backup.lock ` +
        `names the server ${url} over wire v1 (no backup.credential), which takes plain ` +
        `backups only: remove the key file, or point backup.lock at an encrypted backup`,
    );
  }
}

/**
 * A copy (a mirror or an async copy) that is not there: openBackend's advice, init, refuses
 * a node that has a backup.
 */
function refuseMissingCopy(path: string, url: string, lock: LockFile, dir: string): void {
  if (url === lock.backend_url || backupKind(path) !== "missing") return;
  const isAsync = lockDestinations(lock).async.includes(url);
  throw new Error(
    `Cannot open backup: nothing at "${path}", a copy backup.lock names: mount its disk or ` +
      `fix the URL; or, with lightningd stopped, remove it from backup.lock, then add a new ` +
      `copy with ${newCopyCommand(shellQuote(dir), isAsync)}`,
  );
}

/**
 * How a file copy whose files cannot be appended to is made anew: moved aside and out of
 * backup.lock, its URL is free for the mirror that makes it from the node's database. Never
 * a restore, nor init: the node's own database is intact.
 */
function remakeCopy(path: string, url: string, isAsync: boolean, dir: string): string {
  return `with lightningd stopped, move "${path}" aside and remove it from ` +
    `${isAsync ? "async_urls" : "mirror_urls"} in backup.lock, then make it anew with ` +
    newCopyCommand(shellQuote(dir), isAsync, url);
}

/**
 * Why the file copy at `path` cannot be opened, with what to do; `undefined` for
 * backend_url, or an error not of its files. A sync copy's damage and format are said at
 * start, where the node stops ({@linkcode openAtStart}); an async copy's, in the log.
 */
function copyRefusal(
  error: unknown,
  path: string,
  url: string,
  lock: LockFile,
  dir: string,
): string | undefined {
  if (url === lock.backend_url) return undefined;
  const isAsync = lockDestinations(lock).async.includes(url);
  // The reader's advice, to restore from another copy, is no node's with its own database.
  if (error instanceof EmptyBackupError) {
    return `Cannot open backup: "${path}" holds no backup segment (no base-*.clnb or ` +
      `log-*.clnb file), a copy backup.lock names: mount its disk or fix the URL; or, if its ` +
      `files were deleted, ${remakeCopy(path, url, isAsync, dir)}`;
  }
  if (!isAsync) return undefined;
  if (error instanceof FormatTwoError) {
    return `Cannot open backup: "${url}" is not one this version appends to: ${error.what}: ` +
      remakeCopy(path, url, isAsync, dir);
  }
  if (error instanceof CorruptBackupError) {
    return `Cannot open backup: "${url}" is damaged: ${error.where}, which no crash explains: ` +
      remakeCopy(path, url, isAsync, dir);
  }
  return undefined;
}

/**
 * Opens one destination, logging how it stands (or that it connects in the background).
 * `remote` is loaded whenever backup.lock names a `socket:` or `s3://` destination.
 */
function openOne(
  url: string,
  lock: LockFile,
  dir: string,
  key: DataKey | undefined,
  remote: RemoteDestinations | undefined,
  options: StartupOptions,
  log: Startup["log"],
  file: Pick<FileBackendOptions, "syncOnClose"> = {},
): Backend {
  refuseKey(url, dir, key, remote);
  const parsed = parseBackupUrl(url);
  if (parsed.scheme !== "file") {
    return remote!.openRemote(url, parsed.scheme, lock, dir, key, options, log);
  }
  refuseMissingCopy(parsed.path, url, lock, dir);
  let backend: Backend;
  try {
    backend = openBackend(url, {
      ...file,
      lightningDir: dir,
      key,
      segmentBytes: options.segmentBytes,
      log: (message) => log.push({ level: "unusual", message }),
    });
  } catch (error) {
    const refusal = copyRefusal(error, parsed.path, url, lock, dir);
    if (refusal !== undefined) throw new Error(refusal);
    throw error;
  }
  const state = backend.state();
  const rewind = state.rewindVersion === undefined
    ? ""
    : ` (its last change can be dropped back to ${state.rewindVersion})`;
  // A tail is decided at the first write, where the node's version tells torn from damaged.
  const tail = state.tail === undefined
    ? "its tail intact"
    : `${state.tail.bytes} bytes after it at offset ${state.tail.offset} of ` +
      `"${state.tail.path}" fail their checks (a torn append, or a damaged change ` +
      `${state.version + 1}: the first write decides)`;
  log.push({
    level: "info",
    message: `Backup "${url}"${key ? " (encrypted)" : ""} opened and checked at start: ` +
      `version ${state.version}${rewind}, ${state.records} records, ${state.bytes} bytes, ${tail}`,
  });
  return backend;
}

/** `async_retry_s` of backup.lock: the longest pause of a failing async destination. */
function asyncRetryMs(lock: LockFile): number | undefined {
  const seconds = lockNumber(lock, "async_retry_s", { above0: "" });
  return seconds === undefined ? undefined : seconds * 1000;
}

/**
 * The asynchronous destinations: each opened in the background when it starts (with the
 * node's first write), and caught up from the primary, `backend_url`.
 */
function asyncCopies(
  urls: string[],
  primary: Backend,
  lock: LockFile,
  dir: string,
  key: DataKey | undefined,
  remote: RemoteDestinations | undefined,
  options: StartupOptions,
  ids: ReadonlyMap<string, string>,
): AsyncCopy[] {
  const primaryUrl = parseBackupUrl(lock.backend_url);
  // A remote primary is fetched into the scratch directory the launcher grants for it.
  const scratch = `${dir}/${SCRATCH_DIR}`;
  const readPrimary = primaryUrl.scheme === "file"
    ? () => Promise.resolve(new FileBackupReader(lock.backend_url, primaryUrl.path, { key }))
    : () => remote!.readRemotePrimary(lock, dir, key, scratch);
  const maxRetryMs = asyncRetryMs(lock);
  // A copy says itself that it fails, once and then hourly: its backend's retries and
  // give-ups, again at each reopen, would flood lightningd's log while it is down.
  const quiet: StartupOptions = {
    ...options,
    remoteLog: (level, message) => options.remoteLog?.(level === "info" ? level : "debug", message),
  };
  return urls.map((url) => {
    refuseKey(url, dir, key, remote);
    return new AsyncCopy({
      url,
      backupId: ids.get(url),
      dir: shellQuote(dir),
      open: async () => {
        // Synced by the copy with flush(), off the thread: never a sync on the hooks' thread.
        const backend = openOne(url, lock, dir, key, remote, quiet, [], {
          syncOnClose: true,
        });
        try {
          await backend.ready?.();
        } catch (error) {
          backend.close();
          throw error;
        }
        return backend;
      },
      readPrimary,
      primaryVersion: () => primary.state().version,
      log: (level, message) => options.remoteLog?.(level, message),
      maxRetryMs,
    });
  });
}

/**
 * Opens the backup `<dir>/backup.lock` names (all its destinations, when it names several)
 * and says in one line each how it stands.
 */
export async function openAtStart(dir: string, options: StartupOptions = {}): Promise<Startup> {
  const log: Startup["log"] = [];
  let url: string | undefined;
  let backendUrl: string | undefined;
  let setup: BackupSetup | undefined;
  const opened: Backend[] = [];
  try {
    const lock = readLockFile(dir);
    backendUrl = lock.backend_url;
    const { sync, async } = lockDestinations(lock);
    const onFailure = mirrorFailure(lock);
    const ids = copyBackupIds(lock);
    const untied = untiedCopies(lock, dir);
    if (untied.length > 0) {
      // Operators read lightningd's log more often than they run doctor.
      log.push({
        level: "info",
        message: `Not tied to their backup id in backup.lock ("backup_ids"), so another ` +
          `backup found at their URL would take the node's changes unnoticed: ` +
          `${untied.join(", ")}: once you know each holds this node's copy, tie it with "${
            cliCommand("mirror", `<url> --lightning-dir ${shellQuote(dir)}`)
          }"`,
      });
    }
    // Loaded at start, not at the first write, and only when a destination needs it.
    const remote = [...sync, ...async].some((each) => parseBackupUrl(each).scheme !== "file")
      ? await ownCode(
        import("./remote_destinations.ts"),
        (cause) =>
          `Cannot start backup: the plugin's code for socket: and s3:// backups cannot be ` +
          `loaded (${cause}): install cln-backup again, each file readable by lightningd's user ` +
          `(a compiled plugin: build it again with ` +
          `"deno task compile:plugin -- --lightning-dir ${
            shellQuote(dir)
          }"), then start lightningd`,
      )
      : undefined;
    const key = await readKeyFile(dir, lock.backend_url);
    const primary = parseBackupUrl(lock.backend_url);
    setup = {
      dir,
      url: lock.backend_url,
      ...(primary.scheme === "file" ? { path: primary.path } : {}),
      copies: [...sync.slice(1), ...async],
      encrypted: key !== undefined,
    };
    for (url of sync) opened.push(openOne(url, lock, dir, key, remote, options, log));
    let backend: Backend = opened[0];
    if (opened.length > 1) {
      log.push({
        level: "info",
        message: `Each change goes to ${opened.length} destinations in parallel; when one ` +
          `fails, ` +
          (onFailure === "stop" ? "the node stops" : "the others go on (mirror_failure: degrade)"),
      });
      backend = new MultiBackend(
        opened,
        onFailure,
        (level, message) => options.remoteLog?.(level, message),
        // Copies only: the async copies follow backend_url, which is never dropped.
        sync.map((each, i) => i === 0 ? undefined : ids.get(each)),
        shellQuote(dir),
      );
    }
    url = undefined;
    if (async.length === 0) return { backend, log, remote, setup };
    const copies = asyncCopies(async, backend, lock, dir, key, remote, options, ids);
    log.push({
      level: "info",
      message: `Asynchronous copies, never waited for, follow ${lock.backend_url} from the ` +
        `node's first write: ${async.join(", ")}`,
    });
    return { backend: new WithAsyncCopies(backend, copies), log, remote, setup };
  } catch (error) {
    for (const backend of opened) backend.close();
    // A destination's disk mounted read-only, or closed to lightningd's user: which, and why.
    const osError = explainOsError(error);
    const message = error instanceof CorruptBackupError && url !== undefined
      ? damaged(url, error, setup, url === backendUrl ? undefined : dir)
      : error instanceof FormatTwoError && url !== undefined
      ? `Cannot start backup: "${url}" is not one this version appends to: ${error.what}: ${
        remake(setup, url === backendUrl ? undefined : dir)
      }, then start lightningd`
      : error instanceof EmptyBackupError && url !== undefined
      ? `Cannot start backup: "${url}" holds no backup segment (no base-*.clnb or log-*.clnb ` +
        `file): if a disk should be mounted at "${error.path}", mount it, then start ` +
        `lightningd; if it held a backup, its files were deleted, and lightningd must not run ` +
        `without its backup: ${newBackupAdvice(setup)}, then start lightningd`
      : error instanceof BackupKeyError && url !== undefined
      ? keyFileAdvice(dir, url, error)
      : error instanceof Deno.errors.NotCapable
      ? `Cannot start backup: ${launcherDenied(error, dir)}`
      : osError !== undefined
      ? `Cannot start backup: ${osError}`
      : (error as Error).message;
    return { backend: { error: message }, log };
  }
}
