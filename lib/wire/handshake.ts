/**
 * v2's proof of possession: each side proves it holds the node's key with an HMAC-SHA256
 * over both nonces, the node's name and its role, so no reusable secret crosses the wire, a
 * recorded handshake fails against a fresh server nonce, and a client's proof cannot be
 * reflected as the server's. WebCrypto's `verify` compares in constant time.
 *
 * @module
 */
import { MAC_BYTES, NONCE_BYTES } from "./packets_v2.ts";

export const KEY_BYTES = 32;

export type Role = "client" | "server";

export interface HandshakeInput {
  node: string;
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
}

/** A key as the operator copies it: 64 hex digits. */
export function keyToText(key: Uint8Array): string {
  return Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A key read back from its text, or `undefined` when it is not {@linkcode KEY_BYTES} in hex. */
export function keyFromText(text: string): Uint8Array | undefined {
  if (!new RegExp(`^[0-9a-f]{${KEY_BYTES * 2}}$`).test(text)) return undefined;
  return Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16));
}

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

export function nonce(): Uint8Array {
  return randomBytes(NONCE_BYTES);
}

function transcript(role: Role, input: HandshakeInput): Uint8Array<ArrayBuffer> {
  const label = new TextEncoder().encode(`cln-backup/2 ${role}\0${input.node}\0`);
  const out = new Uint8Array(label.length + 2 * NONCE_BYTES);
  out.set(label);
  out.set(input.serverNonce, label.length);
  out.set(input.clientNonce, label.length + NONCE_BYTES);
  return out;
}

function hmacKey(key: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    new Uint8Array(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** The proof `role` sends. */
export async function prove(key: Uint8Array, role: Role, input: HandshakeInput) {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(key), transcript(role, input));
  return new Uint8Array(mac);
}

/** Whether `proof` is `role`'s proof over `input` with `key`. */
export async function checkProof(
  key: Uint8Array,
  role: Role,
  input: HandshakeInput,
  proof: Uint8Array,
): Promise<boolean> {
  if (proof.length !== MAC_BYTES) return false;
  return await crypto.subtle.verify(
    "HMAC",
    await hmacKey(key),
    new Uint8Array(proof),
    transcript(role, input),
  );
}
