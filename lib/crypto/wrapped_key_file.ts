/**
 * Reading an encrypted backup directory's `key.json` (a node's backup, a server's copy), checked
 * to be what a wrapped key can be before it is read.
 *
 * @module
 */
import { MOST_WRAPPED_KEY_BYTES, UnlockError, WRAPPED_KEY_NAME } from "./wrapped_key.ts";

/**
 * The bytes of an encrypted backup's `key.json`; one line when it is missing, naming it as
 * `shownAs` (a server's copy here is named by its URL).
 */
export function readWrappedKey(
  dir: string,
  shownAs = `"${dir}/${WRAPPED_KEY_NAME}"`,
): Uint8Array {
  const path = `${dir}/${WRAPPED_KEY_NAME}`;
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new UnlockError(
      `the backup is encrypted but its wrapped key ${shownAs} is missing: put key.json back ` +
        `from a copy of the backup; without it the backup cannot be read`,
    );
  }
  // Checked before it is read: a FIFO would hang the read, and a file of gigabytes (a sparse
  // one, say) would be read whole into memory before it failed to parse.
  const problem = !info.isFile
    ? "is not a regular file"
    : info.size > MOST_WRAPPED_KEY_BYTES
    ? `holds ${info.size} bytes, more than a wrapped key (at most ${MOST_WRAPPED_KEY_BYTES})`
    : undefined;
  if (problem) {
    throw new UnlockError(
      `the backup's wrapped key ${shownAs} ${problem}: put key.json back from a copy of the ` +
        `backup`,
    );
  }
  return Deno.readFileSync(path);
}
