/**
 * The data key of an encrypted backup: 32 random bytes that seal every record, made once by
 * `init --encrypt` (or `upgrade --encrypt`) and never changed; `rekey` only rewraps it.
 *
 * Its id, the first 8 bytes of a SHA-256 of the key under a label, is written in the clear in
 * every segment header: it says which key a segment needs, so a wrong key file is named as
 * such rather than taken for damage, and it tells nothing about the key.
 *
 * The cryptographic libraries are loaded when a key is made ({@linkcode DataKey.from}), not
 * before: a plain backup never loads them (nor needs them fetched from the npm registry).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { KEY_ID_SIZE } from "../format/segment.ts";
import { npmFirstUse } from "../fs/npm_first_use.ts";

/** The exports of lib/crypto/primitives.ts, the one module that imports the crypto libraries. */
export type Primitives = typeof import("./primitives.ts");
let loaded: Promise<Primitives> | undefined;

/**
 * Named by a computed URL so that Deno does not fetch its npm packages before they are used
 * (it prefetches imports it can read): `deno compile` includes it by name (launcher.ts).
 */
export const PRIMITIVES_MODULE = new URL("./primitives.ts", import.meta.url);

/** The cryptographic primitives (lib/crypto/primitives.ts), loaded on first use. */
export function primitives(): Promise<Primitives> {
  return loaded ??= npmFirstUse(import(PRIMITIVES_MODULE.href), "@noble/ciphers or @noble/hashes");
}

const ID_LABEL = new TextEncoder().encode("cln-backup data key id\0");

/**
 * The id of the key whose bytes are `bytes`. SHA-256 from `node:crypto` (built in, and
 * synchronous), so doctor can match a key file to a backup without loading the libraries.
 */
export function keyIdOf(bytes: Uint8Array): Uint8Array {
  const digest = createHash("sha256").update(ID_LABEL).update(bytes).digest();
  return new Uint8Array(digest.subarray(0, KEY_ID_SIZE));
}

/** An encrypted backup's data key and its id; it seals and opens records (see the module's doc). */
export class DataKey {
  private constructor(
    readonly bytes: Uint8Array,
    readonly id: Uint8Array,
    readonly aead: Pick<Primitives, "aeadSeal" | "aeadOpen">,
  ) {}

  /** The key whose bytes are `bytes` (32 of them). */
  static async from(bytes: Uint8Array): Promise<DataKey> {
    if (bytes.length !== 32) {
      throw new Error(`Cannot use encryption key: it holds ${bytes.length} bytes, not 32`);
    }
    return new DataKey(bytes, keyIdOf(bytes), await primitives());
  }

  /** A new random key. */
  static async generate(): Promise<DataKey> {
    const p = await primitives();
    return await DataKey.from(p.randomBytes(p.KEY_BYTES));
  }

  /** Seals `plain` with this key and `aad` (a fresh random nonce, the ciphertext, the tag). */
  seal(plain: Uint8Array, aad: Uint8Array): Uint8Array {
    return this.aead.aeadSeal(this.bytes, plain, aad);
  }

  /** Opens what {@linkcode seal} made; `undefined` when anything was changed. */
  open(sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
    return this.aead.aeadOpen(this.bytes, sealed, aad);
  }
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes from hex; `undefined` when `text` is not `length` bytes of hex. */
export function fromHex(text: unknown, length: number): Uint8Array | undefined {
  if (typeof text !== "string" || !new RegExp(`^[0-9a-f]{${2 * length}}$`).test(text)) return;
  return Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16));
}

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((byte, i) => byte === b[i]);
