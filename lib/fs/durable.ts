/**
 * The few file-system steps that durability rests on, in one place.
 *
 * @module
 */

import { removeIfExists } from "./exists.ts";

/** Writes all of `bytes` (a write may be short). */
export function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}

/** Makes a directory's entries (a created, renamed or removed file) durable. */
export function syncDir(dir: string): void {
  const handle = Deno.openSync(dir, { read: true });
  try {
    handle.syncSync();
  } finally {
    handle.close();
  }
}

/**
 * Writes a new file durably under its final name: temp file, fsync, rename, dir fsync. The temp
 * file is always a new one, created with `mode`: a secret is never readable by others, even
 * briefly, nor written into a crash's leftover that someone opened while it was 0644.
 * `prepare` runs on the written temp file before its sync (to give it an owner, say).
 */
export function writeFileDurably(
  dir: string,
  name: string,
  bytes: Uint8Array,
  mode?: number,
  prepare?: (tmp: string) => void,
): void {
  const tmp = `${dir}/${name}.tmp`;
  try {
    Deno.removeSync(tmp);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const file = Deno.openSync(tmp, { write: true, createNew: true, mode });
  try {
    try {
      writeAll(file, bytes);
      prepare?.(tmp);
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(tmp, `${dir}/${name}`);
  } catch (error) {
    // A write cut short (a full disk) leaves no part of the file behind; the write's error
    // says more than a failed removal would (the next write removes it first).
    try {
      removeIfExists(tmp);
    } catch {
      // Kept: see above.
    }
    throw error;
  }
  syncDir(dir);
}
