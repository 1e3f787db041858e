import { assert, assertEquals } from "../../tests/support/assert.ts";
import { deflateSync } from "node:zlib";
import { deflate, deflateBound } from "./deflate.ts";

/** Statements of lightningd's shape: hex, some random, some repeated. */
function statements(bytes: number): Uint8Array {
  let text = "";
  while (text.length < bytes) {
    const hex = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16))
      .join("");
    text += `UPDATE channels SET data=x'${hex}${hex}' WHERE id=${text.length};`;
  }
  return new TextEncoder().encode(text.slice(0, bytes));
}

Deno.test("deflate: deflateSync's bytes, call after call on one kept context a level", () => {
  for (const level of [1, 6]) {
    for (const bytes of [3000, 0, 1, 100, 70_000, 3000, 1 << 20, 5 << 20]) {
      const raw = bytes === 1 << 20
        ? crypto.getRandomValues(new Uint8Array(65_536))
        : statements(bytes);
      assertEquals(
        deflate(raw, level),
        new Uint8Array(deflateSync(raw, { level })),
        `${bytes} at ${level}`,
      );
    }
  }
});

Deno.test("deflate: random bytes, which deflate grows, still fit the output", () => {
  const raw = new Uint8Array(200_000);
  for (let at = 0; at < raw.length; at += 65_536) {
    crypto.getRandomValues(raw.subarray(at, at + 65_536));
  }
  const packed = deflate(raw, 1);
  assert(packed.length > raw.length, "deflate grew random bytes");
  assertEquals(packed.buffer.byteLength, deflateBound(raw.length), "the one-shot's bytes");
  assertEquals(packed, new Uint8Array(deflateSync(raw, { level: 1 })));
});
