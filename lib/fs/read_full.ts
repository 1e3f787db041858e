/**
 * Reading a file into a whole buffer: a read may return fewer bytes than asked for anywhere,
 * not only at the end of the file.
 *
 * @module
 */

/** Fills `into` from `file`; the bytes read, fewer than `into.length` only at the file's end. */
export function readFull(file: Deno.FsFile, into: Uint8Array): number {
  let filled = 0;
  while (filled < into.length) {
    const n = file.readSync(into.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return filled;
}
