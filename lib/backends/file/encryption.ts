/**
 * Which key a file backup's records are sealed with, checked against its segment headers
 * before anything is read or written: a plain backup and an encrypted one are never mixed,
 * and a wrong key is named as such rather than taken for damage.
 *
 * @module
 */
import type { Chain, ChainScanOptions } from "../../format/chain.ts";
import { formatBackupId } from "../../format/segment.ts";
import { type DataKey, sameBytes } from "../../crypto/data_key.ts";
import { segmentCipher } from "../../crypto/record_cipher.ts";

/** A key that does not fit the backup: none for an encrypted one, one for a plain one, another. */
export class BackupKeyError extends Error {
  constructor(
    readonly dir: string,
    readonly problem: "missing" | "plain" | "other",
    message: string,
    /** For "other": the ids of the key given and of the key the backup is sealed with. */
    readonly ids?: { given: string; backup: string },
  ) {
    super(message);
    this.name = "BackupKeyError";
  }
}

/**
 * Checks that `key` is the one `chain`'s segments name; `required` false lets an encrypted
 * backup be described without its key (status).
 */
export function checkKey(
  chain: Pick<Chain, "dir" | "keyId">,
  key: DataKey | undefined,
  required = true,
): void {
  const { dir, keyId } = chain;
  if (keyId === undefined && key !== undefined) {
    throw new BackupKeyError(
      dir,
      "plain",
      `Cannot open backup: "${dir}" is not encrypted, but a key was given for it: a plain ` +
        `and an encrypted backup are never mixed: remove the key file if this backup is meant ` +
        `to be plain, or name the encrypted backup`,
    );
  }
  if (keyId !== undefined && key === undefined && required) {
    throw new BackupKeyError(
      dir,
      "missing",
      `Cannot open backup: "${dir}" is encrypted and no key was given for it: the plugin ` +
        `reads it from backup.key beside backup.lock; restore and verify ask for the ` +
        `passphrase or identity; a wire v1 server cannot hold an encrypted backup`,
    );
  }
  if (keyId !== undefined && key !== undefined && !sameBytes(keyId, key.id)) {
    const ids = { given: formatBackupId(key.id), backup: formatBackupId(keyId) };
    throw new BackupKeyError(
      dir,
      "other",
      `Cannot open backup: the key given (id ${ids.given}) is not the key of ` +
        `"${dir}" (id ${ids.backup}): use this backup's key file or secret`,
      ids,
    );
  }
}

/** How to read a chain's records with `key` (checked first with {@linkcode checkKey}). */
export function scanWith(key: DataKey | undefined, decode: boolean): ChainScanOptions {
  return {
    decode,
    cipherFor: key && ((segment) => segmentCipher(key, segment)),
  };
}
