/**
 * Opens the backup a URL names, with the backend that its scheme and contents call for.
 *
 * @module
 */
import type { Backend, BackupReader } from "./backend.ts";
import { FileBackend, type FileBackendOptions } from "./file/writer.ts";
import { FileBackupReader } from "./file/reader.ts";
import { V1BackupReader } from "./v1/reader.ts";
import { type BackupUrl, BackupUrlError, parseBackupUrl } from "./url.ts";
import { isV1Header } from "../format/v1.ts";
import { readLayout } from "../format/layout.ts";
// The socket: and s3:// code is loaded when a URL names it: the plugin opens a file backup
// with this module, and their clients (TLS, wire v2, S3) would cost CPU at its every start.
// String literals, which need no read permission and which `deno compile` includes.
import type { SocketBackendOptions } from "./socket/backend.ts";
import type { S3BackendOptions } from "./s3/backend.ts";
import type { Unlock } from "./s3/reader.ts";
import { pathToFileURL } from "node:url";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand } from "../fs/advised_command.ts";

/**
 * What a file URL's path holds: a cln-backup directory, a v1 `.dbak`, nothing, something
 * that is not a regular file (a FIFO, socket or device), or else.
 */
export type BackupKind = "directory" | "v1" | "missing" | "special" | "other";

/** Tells what is at `path`, opening only a regular file (opening a FIFO would hang). */
export function backupKind(path: string): BackupKind {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "missing";
    throw error;
  }
  if (info.isDirectory) return "directory";
  if (!info.isFile) return "special";
  const file = Deno.openSync(path, { read: true });
  try {
    // Swapped for a FIFO or device after the check: read nothing from it.
    if (!file.statSync().isFile) return "special";
    const head = new Uint8Array(4);
    return file.readSync(head) === 4 && isV1Header(head) ? "v1" : "other";
  } finally {
    file.close();
  }
}

function fileUrl(url: string): BackupUrl & { scheme: "file" } {
  const parsed = parseBackupUrl(url);
  if (parsed.scheme !== "file") {
    throw new BackupUrlError(
      url,
      `a ${parsed.scheme}: backup is read through the network, which this step does not do: ` +
        `check it with "${cliCommand("status", shellQuote(url))}"`,
    );
  }
  return parsed;
}

function special(path: string): Error {
  return new Error(
    `Cannot open backup: "${path}" is not a regular file or directory (a FIFO, socket or ` +
      `device?): fix the URL in backup.lock`,
  );
}

/**
 * Refuses a directory that holds no segment at all, which reading would call a damaged
 * backup: most often a mistyped URL, or a backup server's root named instead of a backup.
 */
export function checkHoldsSegments(path: string): void {
  const layout = readLayout(path);
  if (layout.bases.length > 0 || layout.logs.length > 0) return;
  let serverRoot = false;
  try {
    serverRoot = Deno.statSync(`${path}/nodes`).isDirectory;
  } catch {
    // Not a server root, or not one this user may look into: the general advice holds.
  }
  if (serverRoot) {
    throw new Error(
      `Cannot open backup: "${path}" is a backup server's root, not a backup: name a node's ` +
        `backup, ${pathToFileURL(path).href}/nodes/NAME/backup ` +
        `("${cliCommand("server list-nodes", shellQuote(path))}" shows them), or reach it ` +
        `through its server with a socket+tls: URL`,
    );
  }
  // The Python plugin's README restores from the directory that holds its backup file.
  const inside = backupsIn(path);
  if (inside.length > 0) {
    throw new Error(
      `Cannot open backup: "${path}" is a directory, not a backup; it holds ` +
        `${inside.map((b) => `"${b.name}" (${b.what})`).join(", ")}: name the backup ` +
        `itself, ${pathToFileURL(`${path}/${inside[0].name}`).href}`,
    );
  }
  throw new EmptyBackupError(path);
}

/**
 * A backup directory that holds no segment, and names none inside it: a mistyped URL, a disk
 * not mounted, or its files deleted. Its message is a reader's; the plugin, whose node's
 * database is intact, says the init that starts a new backup instead.
 */
export class EmptyBackupError extends Error {
  constructor(readonly path: string) {
    super(
      `Cannot open backup: "${path}" holds no backup segment (no base-*.clnb or log-*.clnb ` +
        `file): check the URL; if it held a backup, its files were deleted: restore from ` +
        `another copy`,
    );
    this.name = "EmptyBackupError";
  }
}

/**
 * The backups in `dir`: cln-backup directories first, then the Python plugin's v1 files
 * (known by their header, whatever their name).
 */
function backupsIn(dir: string): { name: string; what: string }[] {
  const found: { name: string; what: string }[] = [];
  try {
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isFile && backupKind(path) === "v1") {
        found.push({ name: entry.name, what: "the Python plugin's v1 backup" });
      } else if (entry.isDirectory) {
        const layout = readLayout(path);
        if (layout.bases.length > 0 || layout.logs.length > 0) {
          found.push({ name: entry.name, what: "a cln-backup backup" });
        }
      }
    }
  } catch {
    // Not readable, or a damaged directory in it: the general advice holds.
  }
  return found.sort((a, b) => a.what.localeCompare(b.what) || a.name.localeCompare(b.name));
}

function missing(path: string): Error {
  return new Error(
    `Cannot open backup: nothing at "${path}": mount the disk it is on, or fix the URL in ` +
      `backup.lock; "${cliCommand("init")}" is for a node without a backup`,
  );
}

/**
 * Opens a backup for the plugin to append to. `lightningDir`, the node's, names the
 * directory in the advice for a v1 file, and in the writer's.
 */
export function openBackend(url: string, options: FileBackendOptions = {}): Backend {
  const { lightningDir } = options;
  const { path } = fileUrl(url);
  switch (backupKind(path)) {
    case "directory":
      checkHoldsSegments(path);
      return FileBackend.open(url, path, options);
    case "v1":
      // The plugin runs lightningd's way, far from a shell in the checkout: the command is
      // named as the plugin's messages name them (advised_command.ts), with the node's
      // directory.
      throw new Error(
        `Cannot open backup: "${path}" is a v1 backup of the Python plugin, which this ` +
          `plugin does not append to: with lightningd stopped, convert it once, keeping ` +
          `every version, with "${
            cliCommand(
              "upgrade",
              `--lightning-dir ${
                lightningDir ? shellQuote(lightningDir) : "<the network directory>"
              }`,
            )
          }", then ` +
          `load the plugin with the important-plugin= line it prints and start lightningd`,
      );
    case "missing":
      throw missing(path);
    case "special":
      throw special(path);
    case "other":
      throw new Error(`Cannot open backup: "${path}" is not a backup: check the URL`);
  }
}

/** Opens a backup for reading (restore, status, verify). */
export function openReader(url: string): BackupReader {
  const { path } = fileUrl(url);
  switch (backupKind(path)) {
    case "directory":
      checkHoldsSegments(path);
      return new FileBackupReader(url, path);
    case "v1":
      return new V1BackupReader(url, path);
    case "missing":
      throw missing(path);
    case "special":
      throw special(path);
    case "other":
      throw new Error(`Cannot open backup: "${path}" is not a backup: check the URL`);
  }
}

/**
 * Opens a backup of any scheme for writing: a file backup as {@linkcode openBackend} does, a
 * `socket:` one by connecting to its server (retrying as `socket.policy` allows), an `s3://`
 * one by listing it, with the keys from the environment or beside `lightningDir`'s
 * backup.lock.
 */
export async function connectBackend(
  url: string,
  options: {
    file?: FileBackendOptions;
    socket?: SocketBackendOptions;
    s3?: Omit<S3BackendOptions, "credentials">;
    lightningDir?: string;
  } = {},
): Promise<Backend> {
  switch (parseBackupUrl(url).scheme) {
    case "socket": {
      const { SocketBackend } = await import("./socket/backend.ts");
      return await SocketBackend.connect(url, options.socket);
    }
    case "s3": {
      const { S3Backend } = await import("./s3/backend.ts");
      const { loadCredentials } = await import("./s3/credentials.ts");
      return await S3Backend.connect(url, {
        ...options.s3,
        credentials: loadCredentials(options.lightningDir),
        lightningDir: options.lightningDir,
      });
    }
    case "file":
      return openBackend(url, options.file);
  }
}

/**
 * Opens a backup of any scheme for reading, for the CLI; a `socket:` one is fetched from its
 * server (over v2 with the credential CLN_BACKUP_CREDENTIAL names), an `s3://` one from S3
 * (keys as for {@linkcode connectBackend}), opened with the key `unlock` gives when it is
 * encrypted (without, it can only be described).
 */
export async function connectReader(
  url: string,
  lightningDir?: string,
  unlock?: Unlock,
): Promise<BackupReader> {
  switch (parseBackupUrl(url).scheme) {
    case "socket": {
      const { SocketBackupReader } = await import("./socket/reader.ts");
      const { credentialFromEnv } = await import("./socket/credential.ts");
      return await SocketBackupReader.fetch(url, undefined, credentialFromEnv());
    }
    case "s3": {
      const { S3BackupReader } = await import("./s3/reader.ts");
      const { loadCredentials } = await import("./s3/credentials.ts");
      return await S3BackupReader.fetch(
        url,
        loadCredentials(lightningDir),
        undefined,
        undefined,
        unlock,
      );
    }
    case "file": {
      // The URL is the operator's, typed for this command: a missing backup is a wrong URL
      // (backup.lock's, and init to create one, are the advice where the plugin opens it).
      const { path } = fileUrl(url);
      if (backupKind(path) === "missing") {
        throw new Error(`Cannot open backup: nothing at "${path}": check the URL`);
      }
      return openReader(url);
    }
  }
}
