/**
 * The one door to the cryptographic libraries cln-backup uses; nothing else imports them.
 *
 * - XChaCha20-Poly1305 (`@noble/ciphers`): 24-byte nonces, random for every message, are safe
 *   at any volume, so no counter has to survive a crash or a rewind.
 * - scrypt (`@noble/hashes`): turns a passphrase into a key, slowly on purpose.
 * - SHA-256 (`@noble/hashes`): a key's public id.
 * - age (`age-encryption`): wraps a key for an X25519 recipient, as the `age` tool does.
 *
 * @module
 */
import { xchacha20poly1305 } from "npm:@noble/ciphers@2/chacha.js";
import { scrypt } from "npm:@noble/hashes@2/scrypt.js";
import { sha256 } from "npm:@noble/hashes@2/sha2.js";
import * as age from "npm:age-encryption@0.3";

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;

/** `count` random bytes from the system's CSPRNG. */
export function randomBytes(count: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(count));
}

/** Encrypts and authenticates `plain` with `aad`: a fresh random nonce, the ciphertext, the tag. */
export function aeadSeal(key: Uint8Array, plain: Uint8Array, aad: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const out = new Uint8Array(NONCE_BYTES + plain.length + TAG_BYTES);
  out.set(nonce);
  xchacha20poly1305(key, nonce, aad).encrypt(plain, out.subarray(NONCE_BYTES));
  return out;
}

/** The plaintext of what {@linkcode aeadSeal} made; `undefined` when anything was changed. */
export function aeadOpen(
  key: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | undefined {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  try {
    return xchacha20poly1305(key, sealed.subarray(0, NONCE_BYTES), aad)
      .decrypt(sealed.subarray(NONCE_BYTES));
  } catch {
    return undefined;
  }
}

export function sha256Of(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

/** scrypt with `N = 2^logN`, r and p as given: a 32-byte key. */
export function scryptKey(
  passphrase: string,
  salt: Uint8Array,
  cost: { logN: number; r: number; p: number },
): Uint8Array {
  return scrypt(passphrase.normalize("NFC"), salt, {
    N: 2 ** cost.logN,
    r: cost.r,
    p: cost.p,
    dkLen: KEY_BYTES,
  });
}

/** A new age X25519 identity (`AGE-SECRET-KEY-1…`). */
export function newAgeIdentity(): Promise<string> {
  return age.generateIdentity();
}

/** The recipient (`age1…`) of an identity. */
export function ageRecipientOf(identity: string): Promise<string> {
  return age.identityToRecipient(identity);
}

/** Thrown for a recipient or identity string that is not one. */
export class AgeFormatError extends Error {}

/** Encrypts `plain` for the X25519 `recipient`, as an age file. */
export async function ageEncrypt(plain: Uint8Array, recipient: string): Promise<Uint8Array> {
  const encrypter = new age.Encrypter();
  try {
    encrypter.addRecipient(recipient);
  } catch {
    throw new AgeFormatError(`"${recipient}" is not an age X25519 recipient (age1…)`);
  }
  return await encrypter.encrypt(plain);
}

/** Decrypts an age file with `identity`; `undefined` when the identity does not open it. */
export async function ageDecrypt(
  file: Uint8Array,
  identity: string,
): Promise<Uint8Array | undefined> {
  const decrypter = new age.Decrypter();
  try {
    decrypter.addIdentity(identity);
  } catch {
    throw new AgeFormatError("it is not an age X25519 identity (AGE-SECRET-KEY-1…)");
  }
  try {
    return await decrypter.decrypt(file);
  } catch {
    return undefined;
  }
}
