import { assert, assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { deflateSync, inflateSync } from "node:zlib";
import { concat } from "../bytes/concat.ts";
import { prng } from "../../tests/support/prng.ts";
import { inflate, InflateError, inflateParts } from "./inflate.ts";

const encoder = new TextEncoder();

/** Bytes that compress, but not to nothing: text with random hex in it. */
function sample(length: number, seed: number): Uint8Array {
  const random = prng(seed);
  const out = new Uint8Array(length);
  const text = encoder.encode("UPDATE vars SET intval=intval+1 WHERE name='data_version' ");
  for (let i = 0; i < length; i++) {
    out[i] = random() < 0.5 ? text[i % text.length] : 0x30 + Math.floor(random() * 16);
  }
  return out;
}

function packed(raw: Uint8Array, level = 1): Uint8Array {
  return new Uint8Array(deflateSync(raw, { level }));
}

/** A `read` over `bytes`, in the order asked. */
function reader(bytes: Uint8Array): (into: Uint8Array) => void {
  let at = 0;
  return (into) => {
    if (at + into.length > bytes.length) throw new Error("read past the end");
    into.set(bytes.subarray(at, at + into.length));
    at += into.length;
  };
}

/** The parts joined (each copied when it comes: the next may reuse its buffer). */
function joined(parts: Iterable<Uint8Array>, sizes: number[] = []): Uint8Array {
  const copies: Uint8Array[] = [];
  for (const part of parts) {
    copies.push(part.slice());
    sizes.push(part.length);
  }
  return concat(copies);
}

Deno.test("inflate gives inflateSync's bytes, for a view into a larger buffer too", () => {
  for (const [i, length] of [0, 1, 700, 5_000, 60_000].entries()) {
    const raw = sample(length, i + 1);
    const bytes = packed(raw, 1 + i);
    assertEquals(inflate(bytes, 1 << 20), raw);
    const framed = new Uint8Array(bytes.length + 9);
    framed.set(bytes, 5);
    assertEquals(inflate(framed.subarray(5, 5 + bytes.length), 1 << 20), raw);
  }
});

Deno.test("inflate takes an output larger than its kept buffer", () => {
  const raw = sample(3 << 20, 9);
  assertEquals(inflate(packed(raw), 4 << 20), raw);
});

Deno.test("inflate refuses a cut, damaged or oversized stream, and then works again", () => {
  const raw = sample(20_000, 3);
  const bytes = packed(raw);
  assertThrows(() => inflate(bytes.subarray(0, bytes.length - 1), 1 << 20), /end/);
  assertThrows(() => inflate(new Uint8Array(0), 1 << 20));
  const damaged = bytes.slice();
  damaged[damaged.length >> 1] ^= 0x55;
  assertThrows(() => inflate(damaged, 1 << 20));
  assertThrows(() => inflateSync(damaged));
  const over = assertThrows(() => inflate(bytes, 19_999));
  assert(over instanceof InflateError && over.overLimit);
  // Past the kept buffer, through inflateSync: over its limit too.
  const large = packed(sample(3 << 20, 12));
  const overLarge = assertThrows(() => inflate(large, 2 << 20));
  assert(overLarge instanceof InflateError && overLarge.overLimit, overLarge.message);
  assert(!(assertThrows(() => inflate(damaged, 1 << 20)) as InflateError).overLimit);
  assertEquals(inflate(bytes, 20_000), raw);
});

Deno.test("inflate ignores bytes after the stream's end, as inflateSync does", () => {
  const raw = sample(2_000, 4);
  const bytes = new Uint8Array([...packed(raw), 1, 2, 3]);
  assertEquals(new Uint8Array(inflateSync(bytes)), raw);
  assertEquals(inflate(bytes, 1 << 20), raw);
});

const MiB = 1 << 20;

Deno.test("inflateParts yields the output in parts of the size asked, from any read size", () => {
  const raw = sample(2_500_000, 5);
  const bytes = packed(raw);
  const sizes: number[] = [];
  const parts = inflateParts(reader(bytes), bytes.length, { partBytes: MiB, maxBytes: 4 * MiB });
  assertEquals(joined(parts, sizes), raw);
  assertEquals(sizes, [MiB, MiB, 2_500_000 - 2 * MiB]);
  // Reads and parts of every size around the stream's own: the stream ending exactly at a
  // read's end, the output at a part's end, and both.
  const small = sample(3_000, 6);
  const smallBytes = packed(small, 0);
  for (const readBytes of [1, 2, 7, 100, smallBytes.length - 1, smallBytes.length]) {
    for (const partBytes of [1, 999, 1000, 1500, 2999, 3000, 3001]) {
      const options = { partBytes, maxBytes: 3_000, readBytes };
      const sizes: number[] = [];
      assertEquals(
        joined(inflateParts(reader(smallBytes), smallBytes.length, options), sizes),
        small,
      );
      assertEquals(sizes.every((n, i) => n === partBytes || i === sizes.length - 1), true);
    }
  }
});

Deno.test("inflateParts refuses a cut, damaged, empty or oversized stream", () => {
  const raw = sample(1_500_000, 7);
  const bytes = packed(raw);
  const options = { partBytes: MiB, maxBytes: 2 * MiB };
  for (const readBytes of [1000, MiB]) {
    for (const cutAt of [2, bytes.length >> 1, bytes.length - 4, bytes.length - 1]) {
      const cut = bytes.subarray(0, cutAt);
      const error = assertThrows(() =>
        joined(inflateParts(reader(cut), cut.length, { ...options, readBytes }))
      );
      assert(error instanceof InflateError, error.message);
    }
  }
  const damaged = bytes.slice();
  damaged[1000] ^= 0x80;
  const error = assertThrows(() => joined(inflateParts(reader(damaged), damaged.length, options)));
  assert(error instanceof InflateError);
  assertThrows(() => joined(inflateParts(reader(bytes), 0, options)), /end/);
  assertThrows(
    () => joined(inflateParts(reader(bytes), bytes.length, { ...options, maxBytes: MiB })),
    new RegExp(`past ${MiB} bytes`),
  );
  // Exactly the limit is no more than it.
  assertEquals(
    joined(inflateParts(reader(bytes), bytes.length, { ...options, maxBytes: 1_500_000 })),
    raw,
  );
});

Deno.test("inflateParts reads the bytes after the stream's end and ignores them", () => {
  const raw = sample(1_200_000, 8);
  // Garbage longer than one read, so the end is found in an earlier one.
  const bytes = new Uint8Array([...packed(raw), ...new Uint8Array(1_100_000).fill(7)]);
  const reads: number[] = [];
  const counting = reader(bytes);
  const parts = inflateParts(
    (into) => {
      counting(into);
      reads.push(into.length);
    },
    bytes.length,
    { partBytes: MiB, maxBytes: 2 * MiB },
  );
  assertEquals(joined(parts), raw);
  assertEquals(reads.reduce((a, b) => a + b), bytes.length);
  // Read a part at a time, never whole.
  assertEquals(reads.length > 1 && Math.max(...reads) <= MiB, true);
});
