/**
 * The one door to the cryptographic libraries cln-backup uses; nothing else imports them.
 *
 * - XChaCha20-Poly1305: 24-byte nonces, random for every message, are safe at any volume, so
 *   no counter has to survive a crash or a rewind. It is the construction of
 *   draft-irtf-cfrg-xchacha: HChaCha20 (`@noble/ciphers`) turns the key and the nonce's first
 *   16 bytes into a subkey, and the IETF ChaCha20-Poly1305 of Deno's `node:crypto` (native
 *   code) seals with it under the nonce's last 8 bytes. Measured on the 2-core test machine,
 *   it opens a 300-byte record in 14 us and 1 MiB in 9 ms, where `@noble/ciphers`'s own
 *   XChaCha20-Poly1305 (pure JavaScript) took 91 us and 68 ms: too slow for the hook's
 *   budget and a restore's. Its output is byte for byte `@noble/ciphers`'s
 *   `xchacha20poly1305`, which the tests check (primitives_test.ts).
 * - scrypt (`@noble/hashes`): turns a passphrase into a key, slowly on purpose.
 * - age (`age-encryption`): wraps a key for an X25519 recipient, as the `age` tool does.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { hchacha } from "npm:@noble/ciphers@2/chacha.js";
import { scrypt } from "npm:@noble/hashes@2/scrypt.js";
import { npmFirstUse } from "../fs/npm_first_use.ts";

/**
 * age-encryption, loaded on first use: evaluating it costs about 45 ms of CPU, which every
 * process that never wraps a key (the plugin on a plain backup, most CLI runs) would pay at
 * start.
 */
const ageLibrary = () => npmFirstUse(import("npm:age-encryption@0.3"), "age-encryption");

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
const TAG_BYTES = 16;

/** `count` random bytes from the system's CSPRNG. */
export function randomBytes(count: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(count));
}

/** "expand 32-byte k", ChaCha's constant. */
const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

/** Little-endian words of `bytes` (a copy, so any offset works; the platform is little-endian). */
function words(bytes: Uint8Array): Uint32Array {
  return new Uint32Array(bytes.slice().buffer);
}

/** XChaCha20's subkey and the IETF nonce to use it with, for `key` and a 24-byte `nonce`. */
function xchacha(key: Uint8Array, nonce: Uint8Array): { subkey: Uint8Array; iv: Uint8Array } {
  const out = new Uint32Array(8);
  hchacha(SIGMA, words(key), words(nonce.subarray(0, 16)), out);
  const iv = new Uint8Array(12);
  iv.set(nonce.subarray(16, NONCE_BYTES), 4);
  return { subkey: new Uint8Array(out.buffer), iv };
}

/** Encrypts and authenticates `plain` with `aad`: a fresh random nonce, the ciphertext, the tag. */
export function aeadSeal(key: Uint8Array, plain: Uint8Array, aad: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const { subkey, iv } = xchacha(key, nonce);
  const cipher = createCipheriv("chacha20-poly1305", subkey, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad, { plaintextLength: plain.length });
  const body = cipher.update(plain);
  const end = cipher.final();
  const out = new Uint8Array(NONCE_BYTES + plain.length + TAG_BYTES);
  out.set(nonce);
  out.set(body, NONCE_BYTES);
  out.set(end, NONCE_BYTES + body.length);
  out.set(cipher.getAuthTag(), NONCE_BYTES + plain.length);
  return out;
}

/** The plaintext of what {@linkcode aeadSeal} made; `undefined` when anything was changed. */
export function aeadOpen(
  key: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | undefined {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  // A plain view of the same bytes: Deno's node:crypto misreads a Buffer's subarray (a
  // Buffer at an offset failed to open what it sealed), and callers may hold a Buffer.
  sealed = new Uint8Array(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const length = sealed.length - NONCE_BYTES - TAG_BYTES;
  const { subkey, iv } = xchacha(key, sealed.subarray(0, NONCE_BYTES));
  try {
    const decipher = createDecipheriv("chacha20-poly1305", subkey, iv, {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(aad, { plaintextLength: length });
    decipher.setAuthTag(sealed.subarray(NONCE_BYTES + length));
    const body = decipher.update(sealed.subarray(NONCE_BYTES, NONCE_BYTES + length));
    const end = decipher.final();
    if (end.length === 0) return new Uint8Array(body.buffer, body.byteOffset, body.length);
    const out = new Uint8Array(length);
    out.set(body);
    out.set(end, body.length);
    return out;
  } catch {
    return undefined;
  }
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
export async function newAgeIdentity(): Promise<string> {
  return (await ageLibrary()).generateIdentity();
}

/** The recipient (`age1…`) of an identity. */
export async function ageRecipientOf(identity: string): Promise<string> {
  return (await ageLibrary()).identityToRecipient(identity);
}

/** Thrown for a recipient or identity string that is not one. */
export class AgeFormatError extends Error {}

/** Encrypts `plain` for the X25519 `recipient`, as an age file. */
export async function ageEncrypt(plain: Uint8Array, recipient: string): Promise<Uint8Array> {
  const encrypter = new (await ageLibrary()).Encrypter();
  try {
    encrypter.addRecipient(recipient);
  } catch {
    // An identity given in a recipient's place is a secret: never repeated.
    const shown = /^age-secret-key-/i.test(recipient.trim()) ? "an age identity" : `"${recipient}"`;
    throw new AgeFormatError(`${shown} is not an age X25519 recipient (age1…)`);
  }
  return await encrypter.encrypt(plain);
}

/** Decrypts an age file with `identity`; `undefined` when the identity does not open it. */
export async function ageDecrypt(
  file: Uint8Array,
  identity: string,
): Promise<Uint8Array | undefined> {
  const decrypter = new (await ageLibrary()).Decrypter();
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
