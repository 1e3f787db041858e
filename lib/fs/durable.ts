/**
 * The few file-system steps that durability rests on, in one place.
 *
 * @module
 */

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
 * Writes a new file durably under its final name: temp file, fsync, rename, dir fsync. `mode`
 * is set before any byte is written (a secret is never readable by others, even briefly).
 */
export function writeFileDurably(
  dir: string,
  name: string,
  bytes: Uint8Array,
  mode?: number,
): void {
  const tmp = `${dir}/${name}.tmp`;
  const file = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode });
  try {
    if (mode !== undefined) Deno.chmodSync(tmp, mode);
    writeAll(file, bytes);
    file.syncSync();
  } finally {
    file.close();
  }
  Deno.renameSync(tmp, `${dir}/${name}`);
  syncDir(dir);
}
