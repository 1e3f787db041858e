/**
 * The wrapped data key an encrypted backup keeps beside its segments, `key.json`: the data key
 * sealed for the operator, with a passphrase (scrypt, then XChaCha20-Poly1305) and/or for age
 * X25519 recipients. Only a wrap is ever rewritten (`rekey`); the data key and the records it
 * sealed stay as they are.
 *
 * ```json
 * {"cln_backup_key": 1, "backup_id": "<hex>", "key_id": "<hex>", "wraps": [
 *   {"type": "passphrase", "kdf": "scrypt", "log_n": 17, "r": 8, "p": 1,
 *    "salt": "<base64>", "sealed": "<base64: nonce, key, tag>"},
 *   {"type": "age", "recipient": "age1…", "sealed": "<base64: an age file of the key>"}]}
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { DataKey, fromHex, hex, primitives, sameBytes } from "./data_key.ts";
import { KEY_ID_SIZE } from "../format/segment.ts";

export const WRAPPED_KEY_NAME = "key.json";

/** scrypt's parameters: N = 2^logN. */
export interface ScryptCost {
  logN: number;
  r: number;
  p: number;
}

/** scrypt's cost for a new passphrase wrap: N = 2^17, r = 8 (about 128 MiB, half a second). */
export const SCRYPT_COST: ScryptCost = { logN: 17, r: 8, p: 1 };
/** The least N (2^10) a reader accepts. */
export const MIN_LOG_N = 10;
/**
 * The costs a reader accepts: a file cannot make it allocate without bound. 2^20 is 1 GiB at
 * r = 8, the most @noble/hashes's scrypt takes (its `maxmem`); past it, it throws.
 */
const MAX_LOG_N = 20;
/** The most bytes a `key.json` may hold: one passphrase wrap and many age ones take a few KiB. */
export const MOST_WRAPPED_KEY_BYTES = 1 << 20;

/** What opens a wrapped key: a passphrase, or an age identity (`AGE-SECRET-KEY-1…`). */
export type Secret = { passphrase: string } | { identity: string };

/** Whom a data key is wrapped for. */
export interface WrapFor {
  passphrase?: string;
  recipients?: string[];
}

type Wrap =
  | {
    type: "passphrase";
    kdf: "scrypt";
    log_n: number;
    r: number;
    p: number;
    salt: string;
    sealed: string;
  }
  | { type: "age"; recipient: string; sealed: string };

interface WrappedKeyFile {
  cln_backup_key: 1;
  backup_id: string;
  key_id: string;
  wraps: Wrap[];
}

/** A `key.json` that is not one, or that no secret given opens: one line saying which. */
export class UnlockError extends Error {
  constructor(message: string) {
    super(`Cannot unlock backup: ${message}`);
    this.name = "UnlockError";
  }
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));
const LABEL = new TextEncoder().encode("clnb-key");

/** The associated data of a passphrase wrap: it belongs to this backup and this key id. */
function wrapAad(backupId: Uint8Array, keyId: Uint8Array): Uint8Array {
  const aad = new Uint8Array(LABEL.length + backupId.length + keyId.length);
  aad.set(LABEL);
  aad.set(backupId, LABEL.length);
  aad.set(keyId, LABEL.length + backupId.length);
  return aad;
}

/** Wraps `key` of the backup `backupId` for `wrapFor`; returns the bytes of `key.json`. */
export async function wrapKey(
  key: DataKey,
  backupId: Uint8Array,
  wrapFor: WrapFor,
  cost: ScryptCost = SCRYPT_COST,
): Promise<Uint8Array> {
  const p = await primitives();
  const { ageEncrypt, aeadSeal, randomBytes, scryptKey } = p;
  const wraps: Wrap[] = [];
  if (wrapFor.passphrase !== undefined) {
    if (wrapFor.passphrase.length === 0) throw new UnlockError("the passphrase is empty");
    const salt = randomBytes(16);
    const kek = scryptKey(wrapFor.passphrase, salt, cost);
    wraps.push({
      type: "passphrase",
      kdf: "scrypt",
      log_n: cost.logN,
      r: cost.r,
      p: cost.p,
      salt: b64(salt),
      sealed: b64(aeadSeal(kek, key.bytes, wrapAad(backupId, key.id))),
    });
  }
  for (const recipient of wrapFor.recipients ?? []) {
    let sealed: Uint8Array;
    try {
      sealed = await ageEncrypt(key.bytes, recipient);
    } catch (error) {
      if (error instanceof p.AgeFormatError) throw new UnlockError(error.message);
      throw error;
    }
    wraps.push({ type: "age", recipient, sealed: b64(sealed) });
  }
  if (wraps.length === 0) {
    throw new UnlockError("a key must be wrapped for a passphrase or an age recipient");
  }
  const file: WrappedKeyFile = {
    cln_backup_key: 1,
    backup_id: hex(backupId),
    key_id: hex(key.id),
    wraps,
  };
  return new TextEncoder().encode(JSON.stringify(file, null, 1) + "\n");
}

/** Parses `key.json`, checking it is the key file of the backup `backupId` and key `keyId`. */
function parse(bytes: Uint8Array, where: string, backupId: Uint8Array, keyId: Uint8Array) {
  let file: WrappedKeyFile;
  try {
    file = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new UnlockError(`"${where}" is not JSON: restore it from a copy of the backup`);
  }
  const id = fromHex(file?.backup_id, backupId.length);
  const key = fromHex(file?.key_id, keyId.length);
  if (file?.cln_backup_key !== 1 || !id || !key || !Array.isArray(file.wraps)) {
    throw new UnlockError(
      `"${where}" is not a cln-backup wrapped key (version 1): restore it from a copy of the ` +
        `backup, or upgrade cln-backup`,
    );
  }
  if (!sameBytes(id, backupId) || !sameBytes(key, keyId)) {
    throw new UnlockError(
      `"${where}" holds the key of another backup (backup ${file.backup_id}, key ` +
        `${file.key_id}; this backup is ${hex(backupId)} with key ${hex(keyId)}): put this ` +
        `backup's own key.json back`,
    );
  }
  // Each wrap is tried with each secret given: one a file could make fail other than as a
  // wrong secret does (a field of another type), or make cost many scrypt runs, is refused.
  const fields = (wrap: Wrap, names: string[]) =>
    names.every((name) => typeof (wrap as Record<string, unknown>)[name] === "string");
  const passphrases = file.wraps.filter((w) => w?.type === "passphrase").length;
  const wellFormed = file.wraps.every((w) =>
    typeof w === "object" && w !== null &&
    (w.type === "passphrase"
      ? fields(w, ["kdf", "salt", "sealed"])
      : w.type !== "age" || fields(w, ["recipient", "sealed"]))
  );
  if (!wellFormed || passphrases > 1) {
    throw new UnlockError(
      `"${where}" holds ${
        wellFormed ? "more than one passphrase wrap, which cln-backup never writes" : "a wrap " +
          "whose fields are not a cln-backup wrap's"
      }: restore it from a copy of the backup, or upgrade cln-backup`,
    );
  }
  return file;
}

/**
 * The key id a `key.json` names, unchecked (a backup with no segment header to name it, an
 * empty S3 one, takes it from there; {@linkcode unwrapKey} checks it); `undefined` for none.
 */
export function wrappedKeyId(bytes: Uint8Array): Uint8Array | undefined {
  try {
    return fromHex(JSON.parse(new TextDecoder().decode(bytes))?.key_id, KEY_ID_SIZE);
  } catch {
    return undefined;
  }
}

/**
 * Checks, without any secret, that `bytes` are a `key.json` of the backup `backupId` and key
 * `keyId` (a backup server takes one from its node, never able to open it).
 */
export function checkWrappedKey(
  bytes: Uint8Array,
  where: string,
  backupId: Uint8Array,
  keyId: Uint8Array,
): void {
  parse(bytes, where, backupId, keyId);
}

/** A `key.json`'s wraps, read without a secret; none when it does not parse. */
function wrapList(bytes: Uint8Array): Wrap[] {
  try {
    const { wraps } = JSON.parse(new TextDecoder().decode(bytes)) as WrappedKeyFile;
    return Array.isArray(wraps) && wraps.every((w) => typeof w === "object" && w !== null)
      ? wraps
      : [];
  } catch {
    return [];
  }
}

/** What a `key.json` is wrapped for (no secret needed): a passphrase, and which age recipients. */
export function wrapsOf(bytes: Uint8Array): { passphrase: boolean; recipients: string[] } {
  const wraps = wrapList(bytes);
  return {
    passphrase: wraps.some((w) => w.type !== "age"),
    // A wrap without its recipient named is left to unwrapKey, which refuses it as such.
    recipients: wraps.flatMap((w) =>
      w.type === "age" && typeof w.recipient === "string" ? [w.recipient] : []
    ),
  };
}

/** What a `key.json` is wrapped for, in words, for `status` (no secret needed). */
export function describeWraps(bytes: Uint8Array): string[] {
  return wrapList(bytes).map((w) =>
    w.type === "age" ? `age recipient ${w.recipient}` : "passphrase"
  );
}

async function tryWrap(
  wrap: Wrap,
  secret: Secret,
  aad: Uint8Array,
): Promise<Uint8Array | undefined> {
  const p = await primitives();
  const { ageDecrypt, aeadOpen, scryptKey } = p;
  if (wrap.type === "passphrase" && "passphrase" in secret) {
    if (
      wrap.kdf !== "scrypt" || !Number.isInteger(wrap.log_n) || wrap.log_n < MIN_LOG_N ||
      wrap.log_n > MAX_LOG_N || wrap.r !== 8 || wrap.p !== 1
    ) {
      throw new UnlockError(`its passphrase wrap has costs this cln-backup does not take`);
    }
    const kek = scryptKey(secret.passphrase, unb64(wrap.salt), {
      logN: wrap.log_n,
      r: wrap.r,
      p: wrap.p,
    });
    return aeadOpen(kek, unb64(wrap.sealed), aad);
  }
  if (wrap.type === "age" && "identity" in secret) {
    try {
      return await ageDecrypt(unb64(wrap.sealed), secret.identity);
    } catch (error) {
      if (error instanceof p.AgeFormatError) {
        throw new UnlockError(`the identity given: ${error.message}`);
      }
      throw error;
    }
  }
  return undefined;
}

/**
 * Opens the data key in `key.json` (read from `where`) with the first of `secrets` that
 * opens a wrap; each failure is one line saying what was tried.
 */
export async function unwrapKey(
  bytes: Uint8Array,
  where: string,
  backupId: Uint8Array,
  keyId: Uint8Array,
  secrets: Secret[],
): Promise<DataKey> {
  const file = parse(bytes, where, backupId, keyId);
  const aad = wrapAad(backupId, keyId);
  for (const secret of secrets) {
    for (const wrap of file.wraps) {
      const opened = await tryWrap(wrap, secret, aad);
      if (opened === undefined || opened.length !== 32) continue;
      const key = await DataKey.from(opened);
      if (sameBytes(key.id, keyId)) return key;
    }
  }
  const kinds = describeWraps(bytes).join(", ");
  const tried = secrets.map((s) => "passphrase" in s ? "the passphrase" : "the identity")
    .join(" and ");
  throw new UnlockError(
    `${tried || "no secret"} given does not open the backup's key (wrapped for: ${kinds}): ` +
      `a wrong passphrase or identity?`,
  );
}
