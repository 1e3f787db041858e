import { assert } from "../../tests/support/assert.ts";
import { KeptBuffer } from "./kept_buffer.ts";

Deno.test("KeptBuffer: one buffer, grown to fit, but none kept over 4 MiB", () => {
  const kept = new KeptBuffer();
  const small = kept.for(100);
  assert(kept.for(50) === small);
  assert(kept.for(5 << 20) !== kept.for(5 << 20), "a large buffer was kept");
  assert(kept.for(100) === small);
  assert(kept.for(200).length >= 200);
});
