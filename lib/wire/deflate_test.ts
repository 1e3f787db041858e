import { assert, assertEquals } from "../../tests/support/assert.ts";
import { deflateSync, inflateSync } from "node:zlib";
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

Deno.test("deflate: call after call on one kept context a level, deflateSync's bytes at level 1", () => {
  for (const level of [1, 6]) {
    for (const bytes of [3000, 0, 1, 100, 70_000, 3000, 1 << 20, 5 << 20]) {
      const raw = bytes === 1 << 20
        ? crypto.getRandomValues(new Uint8Array(65_536))
        : statements(bytes);
      const packed = deflate(raw, level);
      assertEquals(new Uint8Array(inflateSync(packed)), raw, `${bytes} at ${level}`);
      if (level === 1) {
        assertEquals(packed, new Uint8Array(deflateSync(raw, { level })), `${bytes} at ${level}`);
      }
    }
  }
});

Deno.test("deflate: at level 6, an input after a longer one still inflates back", () => {
  // The byte the longer input left past this one's end ("c") makes zlib-ng pick another match
  // than deflateSync does (measured in Deno 2.9.6): other bytes, the same text.
  const text = "SET x='ee59e38f3babee59e38f3bab';SET x='c3afa4fbfc76c3afa4fbfc76';" +
    "SET x='432afdfae72a432afdfae72a';SET x='";
  const raw = new TextEncoder().encode(text);
  deflate(new TextEncoder().encode("z".repeat(raw.length) + "c"), 6);
  assertEquals(new Uint8Array(inflateSync(deflate(raw, 6))), raw);
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
