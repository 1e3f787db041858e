/**
 * How a rekey's new `key.json` replaced a remote backup's (S3, a server): only over the one
 * the rekey read (`"checked"`), or whatever it held (`"unchecked"`: the S3 service or the
 * server cannot check that, and the rekey says so). One overtaken by another rekey is not
 * stored: an error.
 *
 * @module
 */

export type KeyReplaced = "checked" | "unchecked";
