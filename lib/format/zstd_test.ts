import { assert, assertEquals } from "../../tests/support/assert.ts";
import { constants, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { zstdBound, zstdCompress, zstdDecompress } from "./zstd.ts";

const encoder = new TextEncoder();
const LEVEL_1 = { params: { [constants.ZSTD_c_compressionLevel]: 1 } };

/** SQL of lightningd's shape: hex values, some random, some repeated. */
function statements(i: number, bytes: number): Uint8Array {
  let text = "";
  while (text.length < bytes) {
    const hex = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16))
      .join("");
    text += `UPDATE channels SET state=${i}, data=x'${hex}${hex}' WHERE id=${i};`;
  }
  return encoder.encode(text.slice(0, bytes));
}

/** What node:zlib's one-shot function makes of `stored`, which every record got before. */
function oneShot(stored: Uint8Array, rawLength: number): Uint8Array | undefined {
  try {
    const raw = new Uint8Array(zstdDecompressSync(stored));
    return raw.length === rawLength ? raw : undefined;
  } catch {
    return undefined;
  }
}

Deno.test("zstd: frames are zstd level 1's own bytes, one after another on one context", () => {
  for (const [i, bytes] of [1, 100, 2048, 5000, 70_000].entries()) {
    const raw = statements(i, bytes);
    const frame = zstdCompress(raw);
    assertEquals(frame, new Uint8Array(zstdCompressSync(raw, LEVEL_1)));
    assertEquals(zstdDecompress(frame, raw.length), raw);
    assertEquals(oneShot(frame, raw.length), raw);
  }
});

Deno.test("zstd: frames compressed into one reused buffer are the same bytes, in that buffer", () => {
  const into = new Uint8Array(zstdBound(70_000)).fill(0xff);
  for (const [i, bytes] of [70_000, 5000, 100, 2048].entries()) {
    const raw = statements(i, bytes);
    const frame = zstdCompress(raw, into);
    assertEquals(frame.buffer, into.buffer);
    assertEquals(frame, new Uint8Array(zstdCompressSync(raw, LEVEL_1)));
  }
  // A buffer too small for the bound is left alone.
  const small = new Uint8Array(16);
  assert(zstdCompress(statements(0, 5000), small).buffer !== small.buffer);
});

Deno.test("zstd: frames decompressed into one reused buffer are the same bytes, in it", () => {
  const into = new Uint8Array(70_001).fill(0xff);
  for (const [i, bytes] of [70_000, 5000, 100, 2048].entries()) {
    const raw = statements(i, bytes);
    const back = zstdDecompress(zstdCompress(raw), raw.length, () => into);
    assertEquals(back?.buffer, into.buffer);
    assertEquals(back, raw);
  }
});

Deno.test("zstd: a large payload written by the one-shot function still decodes", () => {
  const raw = statements(9, 1_000_000);
  // node:zlib's one-shot output over 16 KiB ends with an empty second frame.
  const old = new Uint8Array(zstdCompressSync(raw, LEVEL_1));
  const frame = zstdCompress(raw);
  assert(old.length > frame.length, "the one-shot output carries a second frame");
  assertEquals(zstdDecompress(old, raw.length), raw);
  assertEquals(zstdDecompress(frame, raw.length), raw);
});

Deno.test("zstd: payloads past the context's output limit take the one-shot path", () => {
  const raw = statements(7, 5 * 1024 * 1024);
  const frame = zstdCompress(raw);
  assertEquals(new Uint8Array(zstdDecompressSync(frame)), raw);
  assertEquals(zstdDecompress(frame, raw.length), raw);
  assertEquals(zstdDecompress(frame, raw.length - 1), undefined);
});

Deno.test("zstd: a frame that decodes to another length, or not at all, is undefined", () => {
  const raw = statements(3, 6000);
  const frame = zstdCompress(raw);
  assertEquals(zstdDecompress(frame, raw.length + 1), undefined, "shorter than promised");
  assertEquals(zstdDecompress(frame, raw.length - 1), undefined, "longer than promised");
  assertEquals(zstdDecompress(frame.subarray(0, frame.length - 3), raw.length), undefined);
  const trailing = new Uint8Array([...frame, 1, 2, 3]);
  assertEquals(zstdDecompress(trailing, raw.length), undefined, "bytes after the frame");
  const garbage = crypto.getRandomValues(new Uint8Array(200));
  assertEquals(zstdDecompress(garbage, raw.length), undefined);
  assertEquals(zstdDecompress(new Uint8Array(0), 0), undefined);
  // Each refusal leaves the thread's context (or its replacement) decoding the next frame.
  assertEquals(zstdDecompress(frame, raw.length), raw);
});

Deno.test("zstd: frames in a random order of sizes and refusals round-trip", () => {
  for (let i = 0; i < 300; i++) {
    const raw = statements(i, 1 + Math.floor(Math.random() * 20_000));
    const frame = zstdCompress(raw);
    if (i % 7 === 0) assertEquals(zstdDecompress(frame, raw.length + 5), undefined);
    const back = zstdDecompress(frame, raw.length);
    assert(back, `frame ${i} of ${raw.length} bytes decodes`);
    assertEquals(back, raw);
  }
});
