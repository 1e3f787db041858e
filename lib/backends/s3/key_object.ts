/**
 * An encrypted S3 backup's wrapped data key, the object `key.json` (as in a file backup's
 * directory, lib/crypto/wrapped_key.ts): its presence is what makes the backup encrypted,
 * and the key id it names is the one every sealed record needs. A key given for a backup
 * without one, none for a backup with one, or another key, is refused before anything is
 * read or written (the same rules and messages as a file backup's,
 * lib/backends/file/encryption.ts).
 *
 * @module
 */
import { S3Client, type S3Credentials, S3Error } from "./client.ts";
import { DEFAULT_S3_POLICY, retrying } from "./retry.ts";
import { readBackupId, s3Url } from "./backend.ts";
import { wrappedKeyKey } from "./keys.ts";
import {
  MOST_WRAPPED_KEY_BYTES,
  WRAPPED_KEY_NAME,
  wrappedKeyId,
} from "../../crypto/wrapped_key.ts";
import { checkKey } from "../file/encryption.ts";
import { type DataKey, sameBytes } from "../../crypto/data_key.ts";
import { CorruptBackupError } from "../../format/segment.ts";
import { keyAsItWas, KeyMayBeStoredError, type KeyReplaced } from "../key_replaced.ts";

/** What `key.json` says of an encrypted backup, read without any secret. */
export interface WrappedKeyObject {
  /** The object's bytes, for unwrapping and for status (whom it is wrapped for). */
  bytes: Uint8Array;
  /** The id of the data key every record is sealed with. */
  keyId: Uint8Array;
  /** The object's ETag, if S3 sent one: rekey replaces only the object it read. */
  etag: string | undefined;
}

/** Reads `key.json`: `undefined` for a plain backup. */
export async function readWrappedKey(client: S3Client): Promise<WrappedKeyObject | undefined> {
  const key = wrappedKeyKey(client.url.prefix);
  let bytes: Uint8Array, etag: string | undefined;
  try {
    ({ bytes, etag } = await client.getTagged(key, 0, MOST_WRAPPED_KEY_BYTES));
  } catch (error) {
    if (error instanceof S3Error && error.code === "NoSuchKey") return undefined;
    throw error;
  }
  const keyId = wrappedKeyId(bytes);
  if (!keyId) {
    throw new CorruptBackupError(key, undefined, "a wrapped key that names no key id");
  }
  return { bytes, keyId, etag };
}

/**
 * Checks that `key` fits the backup at `url`, whose `key.json` is `wrapped`; `required`
 * false lets an encrypted backup be described without its key (status).
 */
export function checkObjectKey(
  url: string,
  wrapped: WrappedKeyObject | undefined,
  key: DataKey | undefined,
  required = true,
): void {
  checkKey({ dir: url, keyId: wrapped?.keyId }, key, required);
}

/** The backup id and `key.json` of the S3 backup at `url` (CLI: unlock, rekey). */
export async function fetchWrappedKey(
  url: string,
  credentials: S3Credentials,
): Promise<{ backupId: Uint8Array; wrapped: WrappedKeyObject | undefined }> {
  const policy = DEFAULT_S3_POLICY;
  const client = new S3Client(s3Url(url), credentials, policy.timeoutMs);
  return await retrying("reading the wrapped key", policy, () => {}, async () => ({
    backupId: await readBackupId(client, url),
    wrapped: await readWrappedKey(client),
  }));
}

/**
 * The S3 service refused If-Match with every form of the ETag it gave for `key.json`, which
 * is unchanged: it cannot be replaced only if unchanged there; it is as it was.
 */
export class IfMatchRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IfMatchRefusedError";
  }
}

/**
 * Replaces the `key.json` of the S3 backup at `url` (rekey) with `bytes`, only over the
 * object `read` (If-Match its ETag); with `ifMatch` false, or where the service implements no
 * If-Match or gave no ETag, whatever it holds (`"unchecked"`). S3 swaps an object whole, so a
 * reader sees the old wraps or the new ones; no record changes. A service that ignores
 * If-Match replaces it whatever it holds, unseen here. Throws when another rekey replaced it
 * since it was read (nothing stored), an {@linkcode IfMatchRefusedError}, a
 * {@linkcode KeyMayBeStoredError} when it gave up after a try whose answer was lost, or an
 * S3Error saying `key.json` is as it was when no try went out or each was refused.
 */
export async function replaceWrappedKey(
  url: string,
  credentials: S3Credentials,
  read: WrappedKeyObject,
  bytes: Uint8Array,
  ifMatch = true,
): Promise<KeyReplaced> {
  const policy = DEFAULT_S3_POLICY;
  const client = new S3Client(s3Url(url), credentials, policy.timeoutMs);
  const key = wrappedKeyKey(client.url.prefix);
  // A PUT that went out without an answer (timed out, cut, a 5xx but 501's "not
  // implemented") may have stored the bytes all the same; one that never went out (no
  // connection, a permission this process lacks) or was refused stored nothing.
  let unanswered = false;
  const put = async (options: { ifMatch?: string } = {}): Promise<void> => {
    try {
      await client.put(key, bytes, options);
    } catch (error) {
      if (error instanceof S3Error && !error.unsent) {
        const status = error.status;
        if (status === undefined || (status >= 500 && status !== 501)) unanswered = true;
      }
      throw error;
    }
  };
  const unchecked = async (): Promise<"unchecked"> => {
    await put();
    return "unchecked";
  };
  // The ETag as sent (quoted, as HTTP has it), then bare: Ceph's RGW matches only that.
  const etag = ifMatch ? read.etag : undefined;
  const forms = etag === undefined ? [] : [...new Set([etag, etag.replace(/^"(.*)"$/, "$1")])];
  const swap = async (): Promise<KeyReplaced | "overtaken" | "refused"> => {
    for (const form of forms) {
      try {
        await put({ ifMatch: form });
        return "checked";
      } catch (error) {
        if (!(error instanceof S3Error)) throw error;
        // Amazon's answer before its conditional writes (2024), and some services' still:
        // a rekey there replaces it as before them, and says so.
        if (error.code === "NotImplemented") return await unchecked();
        if (error.status !== 412) throw error;
      }
      // Every wrap is sealed afresh, so no other rekey stores either of these bytes: ours
      // are a try whose answer was lost, and those read mean this form of the ETag missed.
      const now = await client.get(key, 0, MOST_WRAPPED_KEY_BYTES);
      if (sameBytes(now, bytes)) return "checked";
      if (!sameBytes(now, read.bytes)) return "overtaken";
    }
    return "refused";
  };
  let stored: KeyReplaced | "overtaken" | "refused";
  try {
    stored = await retrying(
      "storing the wrapped key",
      policy,
      () => {},
      forms.length === 0 ? unchecked : swap,
    );
  } catch (error) {
    if (unanswered) {
      throw new KeyMayBeStoredError(
        `${(error as Error).message}; a try may have stored it`,
      );
    }
    if (!(error instanceof S3Error)) throw error;
    throw new S3Error(
      keyAsItWas(error.message),
      error.status,
      error.code,
      error.transient,
      error.unsent,
    );
  }
  if (stored === "overtaken") {
    throw new Error(
      `another rekey replaced "${url}/${WRAPPED_KEY_NAME}" since this one read it: ` +
        `${WRAPPED_KEY_NAME} was not changed by this one; run rekey again with the secret now ` +
        `in force (the one that other rekey was given)`,
    );
  }
  if (stored === "refused") {
    throw new IfMatchRefusedError(
      `the S3 service of "${url}" refuses If-Match with the ETag it gave for ` +
        `${WRAPPED_KEY_NAME} (${forms.join(", then ")}), though ${WRAPPED_KEY_NAME} is ` +
        `unchanged: it cannot be replaced there only if unchanged (a proxy before the ` +
        `service that rewrites ETags?); ${WRAPPED_KEY_NAME} is as it was (the old secrets ` +
        `open it)`,
    );
  }
  return stored;
}
