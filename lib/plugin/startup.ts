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
import { openBackend } from "../backends/open.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { credentialIn } from "../backends/socket/credential.ts";
import { SocketBackend, type SocketLogLevel } from "../backends/socket/backend.ts";
import { retryPolicyFromLock } from "../backends/socket/options.ts";
import { readLockFile } from "../backup/lock_file.ts";
import { CorruptBackupError } from "../format/segment.ts";
import type { LogLevel } from "./jsonrpc.ts";

export interface Startup {
  /** The open backup, or the one line saying why there is none. */
  backend: Backend | { error: string };
  /** What to log at start, in order: repairs made on open, then the state line. */
  log: { level: LogLevel; message: string }[];
}

/** Why a damaged backup refuses the node, and what to do: the node's own database is fine. */
function damaged(url: string, error: CorruptBackupError): string {
  return `Cannot start backup: "${url}" is damaged: ${error.where}, which no crash explains; ` +
    `lightningd must not run without its ` +
    `backup, so every database write is refused: with lightningd stopped, move the backup ` +
    `aside, create a new one from the node's database ("backup-cli init --lightning-dir ` +
    `<dir> <url>"), then start lightningd`;
}

export interface StartupOptions extends Pick<FileBackendOptions, "segmentBytes"> {
  /** Where a `socket:` backup logs what happens later (reconnects, giving up). */
  remoteLog?: (level: SocketLogLevel, message: string) => void;
}

/** Opens the backup `<dir>/backup.lock` names and says in one line how it stands. */
export function openAtStart(dir: string, options: StartupOptions = {}): Startup {
  const log: Startup["log"] = [];
  let url: string | undefined;
  try {
    const lock = readLockFile(dir);
    url = lock.backend_url;
    if (parseBackupUrl(url).scheme === "socket") {
      const backend = SocketBackend.open(url, {
        policy: retryPolicyFromLock(lock),
        log: options.remoteLog,
        credential: credentialIn(dir),
      });
      log.push({
        level: "info",
        message: `Backup "${url}" is on the server at ${backend.destination}: connecting; the ` +
          `first database write waits for the server's version and is checked against it`,
      });
      return { backend, log };
    }
    const backend = openBackend(url, {
      segmentBytes: options.segmentBytes,
      log: (message) => log.push({ level: "unusual", message }),
    });
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
      message: `Backup "${url}" opened and checked at start: version ${state.version}` +
        `${rewind}, ${state.records} records, ${state.bytes} bytes, ${tail}`,
    });
    return { backend, log };
  } catch (error) {
    const message = error instanceof CorruptBackupError && url !== undefined
      ? damaged(url, error)
      : (error as Error).message;
    return { backend: { error: message }, log };
  }
}
