import { xchacha20poly1305 } from "npm:@noble/ciphers@2/chacha.js";
import { Buffer } from "node:buffer";
import { assertEquals } from "../../tests/support/assert.ts";
import { aeadOpen, aeadSeal, NONCE_BYTES, randomBytes } from "./primitives.ts";

Deno.test("aeadSeal is @noble/ciphers's XChaCha20-Poly1305, byte for byte, both ways", () => {
  for (const length of [0, 1, 15, 16, 17, 63, 64, 65, 300, 4096, 70_000]) {
    const key = randomBytes(32);
    const aad = randomBytes(length % 97);
    const plain = new Uint8Array(length).map((_, i) => (i * 31 + length) & 0xff);
    const sealed = aeadSeal(key, plain, aad);
    const nonce = sealed.subarray(0, NONCE_BYTES);
    const reference = xchacha20poly1305(key, nonce, aad).encrypt(plain);
    assertEquals(sealed.subarray(NONCE_BYTES), reference, `length ${length}`);
    const other = new Uint8Array(NONCE_BYTES + reference.length);
    const otherNonce = randomBytes(NONCE_BYTES);
    other.set(otherNonce);
    other.set(xchacha20poly1305(key, otherNonce, aad).encrypt(plain), NONCE_BYTES);
    assertEquals(aeadOpen(key, other, aad), plain, `opens noble's, length ${length}`);
  }
});

Deno.test("aeadOpen refuses a changed byte, tag, nonce, aad or key, and a cut", () => {
  const key = randomBytes(32);
  const aad = randomBytes(20);
  const sealed = aeadSeal(key, randomBytes(100), aad);
  for (let at = 0; at < sealed.length; at++) {
    const changed = sealed.slice();
    changed[at] ^= 0x80;
    assertEquals(aeadOpen(key, changed, aad), undefined, `byte ${at}`);
  }
  assertEquals(aeadOpen(key, sealed, aad.subarray(1)), undefined);
  assertEquals(aeadOpen(randomBytes(32), sealed, aad), undefined);
  assertEquals(aeadOpen(key, sealed.subarray(0, sealed.length - 1), aad), undefined);
  assertEquals(aeadOpen(key, sealed.subarray(0, 39), aad), undefined);
});

Deno.test("aeadOpen opens what it sealed from a Buffer at an offset, as from a Uint8Array", () => {
  const key = randomBytes(32);
  const aad = new Uint8Array(40).fill(3);
  const plain = randomBytes(5000);
  const sealed = aeadSeal(key, plain, aad);
  const framed = new Uint8Array(32 + sealed.length);
  framed.set(sealed, 32);
  // A Buffer joined from parts (as an HTTP body's chunks are), viewed past a header.
  const joined = Buffer.concat([framed.subarray(0, 100), framed.subarray(100)], framed.length);
  assertEquals(aeadOpen(key, joined.subarray(32), aad), plain);
  assertEquals(aeadOpen(key, framed.subarray(32), aad), plain);
});
