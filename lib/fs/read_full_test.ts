import { assertEquals } from "../../tests/support/assert.ts";
import { readFull } from "./read_full.ts";

Deno.test("readFull fills the buffer, and says how much there was at the file's end", () => {
  const path = Deno.makeTempFileSync();
  try {
    const bytes = new Uint8Array(100_000).map((_, i) => i % 251);
    Deno.writeFileSync(path, bytes);
    const file = Deno.openSync(path, { read: true });
    try {
      const into = new Uint8Array(60_000);
      assertEquals(readFull(file, into), 60_000);
      assertEquals(into, bytes.subarray(0, 60_000));
      assertEquals(readFull(file, into), 40_000);
      assertEquals(into.subarray(0, 40_000), bytes.subarray(60_000));
      assertEquals(readFull(file, into), 0);
    } finally {
      file.close();
    }
  } finally {
    Deno.removeSync(path);
  }
});
