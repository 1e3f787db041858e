/**
 * Replaces the key.json of a file backup's directory for rekey, saying in its failure whether
 * the new one is in place: the rename may have happened before a later step (the directory's
 * sync) failed, and an operator told "as it was" would discard the secret now in force.
 *
 * @module
 */
import { writeFileDurably } from "../fs/durable.ts";
import { explainOsError, isOutOfRoom } from "../fs/os_error.ts";
import { sameBytes } from "../crypto/data_key.ts";
import { WRAPPED_KEY_NAME } from "../crypto/wrapped_key.ts";
import { keyAsItWas, KeyMayBeStoredError } from "../backends/key_replaced.ts";

/** How a file is written durably (lib/fs/durable.ts); tests fail it at a chosen step. */
export type DurableWrite = (dir: string, name: string, bytes: Uint8Array) => void;

/**
 * Writes `wrapped` as `dir`'s key.json. A failure after which key.json holds `wrapped` throws
 * {@linkcode KeyMayBeStoredError}; any other failure says key.json is as it was (a full disk
 * with the place and what to do), which the atomic rename makes true.
 */
export function storeKeyFile(
  action: string,
  dir: string,
  wrapped: Uint8Array,
  write: DurableWrite = writeFileDurably,
): void {
  try {
    write(dir, WRAPPED_KEY_NAME, wrapped);
  } catch (error) {
    if (holds(dir, wrapped)) {
      throw new KeyMayBeStoredError(
        `${action}: the new ${WRAPPED_KEY_NAME} was put in place in "${dir}", but its write ` +
          `did not finish (${(error as Error).message})`,
      );
    }
    if (isOutOfRoom(error)) {
      throw new Error(
        `${action}: the file system of "${dir}" is full (no space or quota left); ` +
          `${WRAPPED_KEY_NAME} is as it was (the old secrets open it): free some space on it, ` +
          `then run this again`,
      );
    }
    // Explained here: the CLI's explainOsError no longer reads the message once it is appended to.
    (error as Error).message = keyAsItWas(explainOsError(error) ?? (error as Error).message);
    throw error;
  }
}

/** Whether `dir`'s key.json reads as `wrapped`; true when it cannot be read (unknown). */
function holds(dir: string, wrapped: Uint8Array): boolean {
  try {
    return sameBytes(Deno.readFileSync(`${dir}/${WRAPPED_KEY_NAME}`), wrapped);
  } catch {
    return true;
  }
}
