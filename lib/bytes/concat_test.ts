import { assert, assertEquals } from "../../tests/support/assert.ts";
import { concat } from "./concat.ts";

Deno.test("concat joins parts in order, empty ones included", () => {
  const joined = concat([
    Uint8Array.of(1, 2),
    new Uint8Array(0),
    Uint8Array.of(3),
    Uint8Array.of(4, 5),
  ]);
  assertEquals(joined, Uint8Array.of(1, 2, 3, 4, 5));
});

Deno.test("concat of no parts is empty; of one part is that part", () => {
  assertEquals(concat([]), new Uint8Array(0));
  const only = Uint8Array.of(7, 8);
  assert(concat([only]) === only, "one part comes back as it is");
});

Deno.test("concat copies views at their own offsets", () => {
  const backing = Uint8Array.of(0, 1, 2, 3, 4, 5);
  assertEquals(concat([backing.subarray(4), backing.subarray(1, 3)]), Uint8Array.of(4, 5, 1, 2));
});
