/**
 * How a rekey's new `key.json` replaced a remote backup's (S3, a server): only over the one
 * the rekey read (`"checked"`), or whatever it held (`"unchecked"`: the S3 service or the
 * server cannot check that, and the rekey says so). One overtaken by another rekey is not
 * stored: an error; so is one sent whose answer was lost, {@linkcode KeyMayBeStoredError}.
 *
 * @module
 */

import { WRAPPED_KEY_NAME } from "../crypto/wrapped_key.ts";

/** How the new `key.json` was stored. */
export type KeyReplaced = "checked" | "unchecked";

/**
 * The new `key.json` was sent, but whether it was stored is not known (the answer was lost):
 * the backup may be wrapped for the new secrets already, which the operator must keep.
 */
export class KeyMayBeStoredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyMayBeStoredError";
  }
}

/** `why` a rekey failed, when its new `key.json` certainly was not stored: the old one holds. */
export function keyAsItWas(why: string): string {
  return `${why}: ${WRAPPED_KEY_NAME} is as it was (the old secrets open it)`;
}
