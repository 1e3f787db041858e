/**
 * `backup.lock`: the file in the lightning dir that tells the plugin where the backup is,
 * `{"backend_url": "<url>"}`, as the Python plugin writes it (extra keys are kept).
 *
 * @module
 */
import { syncDir, writeAll, writeFileDurably } from "../fs/durable.ts";
import { claimWorkPath, workPath } from "../fs/work_path.ts";
import { explainOsError } from "../fs/os_error.ts";
import { statIfExists } from "../fs/exists.ts";
import { ownLike } from "../fs/owner_like.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { shellQuote } from "../fs/shell_quote.ts";

export const LOCK_FILE = "backup.lock";

/** What `backup.lock` holds: the backup's URL, and any other keys as they were written. */
export interface LockFile {
  /** The backup's URL (see lib/backends/url.ts). */
  backend_url: string;
  /** Keys besides it, such as `async_urls` or a backend's retry settings. */
  [key: string]: unknown;
}

/** Reads `<dir>/backup.lock`; every failure is one line that says what to do. */
export function readLockFile(dir: string): LockFile {
  const path = `${dir}/${LOCK_FILE}`;
  let text: string;
  try {
    // Only a regular file is read: reading a FIFO would hang the plugin before lightningd
    // hears from it.
    if (!Deno.statSync(path).isFile) throw new Deno.errors.InvalidData("not a regular file");
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot start backup: no ${LOCK_FILE} in "${dir}": run "${
          cliCommand("init", `--lightning-dir ${shellQuote(dir)} <url>`)
        }" first ` +
          `(lightningd runs plugins in the network directory, e.g. ~/.lightning/bitcoin)`,
      );
    }
    throw new Error(
      `Cannot start backup: ${
        explainOsError(error) ?? `cannot read "${path}": ${(error as Error).message}`
      }`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(
      `Cannot start backup: "${path}" is not JSON: it should hold {"backend_url": "file:///..."}`,
    );
  }
  const url = (value as Record<string, unknown> | null)?.backend_url;
  if (typeof url !== "string" || url === "") {
    throw new Error(
      `Cannot start backup: "${path}" has no "backend_url": it should hold ` +
        `{"backend_url": "file:///..."}`,
    );
  }
  return value as LockFile;
}

function encodeLock(lock: LockFile): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(lock) + "\n");
}

/**
 * Writes `<dir>/backup.lock` durably, replacing the one there, whose owner and mode the new one
 * keeps: rewritten by root (`mirror` tying a copy while lightningd runs), it stays readable by
 * lightningd's user, whatever root's umask.
 */
export function writeLockFile(dir: string, lock: LockFile): void {
  const path = `${dir}/${LOCK_FILE}`;
  // A symlink put there is replaced by the file, as before.
  const kept = statIfExists(path)?.isFile === true && !Deno.lstatSync(path).isSymlink;
  writeFileDurably(
    dir,
    LOCK_FILE,
    encodeLock(lock),
    undefined,
    kept ? (tmp) => ownLike(tmp, path) : undefined,
  );
}

/** `<dir>/backup.lock` exists already: another process wrote it. */
export class LockFileExists extends Error {
  constructor(readonly path: string) {
    super(`"${path}" exists already`);
    this.name = "LockFileExists";
  }
}

/**
 * Creates `<dir>/backup.lock` durably, only if there is none: written whole to a work file,
 * synced, then hard-linked to its name, which fails when the name exists (where a rename would
 * replace it); throws {@linkcode LockFileExists} then.
 */
export function createLockFile(dir: string, lock: LockFile): void {
  const path = `${dir}/${LOCK_FILE}`;
  const work = workPath(path, "creating");
  const file = claimWorkPath(work, "file");
  try {
    writeAll(file, encodeLock(lock));
    file.syncSync();
    Deno.linkSync(work, path);
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) throw new LockFileExists(path);
    throw error;
  } finally {
    Deno.removeSync(work);
    file.close();
  }
  syncDir(dir);
}
