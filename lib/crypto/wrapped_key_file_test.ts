import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { readWrappedKey } from "./wrapped_key_file.ts";
import { MOST_WRAPPED_KEY_BYTES } from "./wrapped_key.ts";

Deno.test("readWrappedKey: a key.json of gigabytes or a FIFO is refused before it is read", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/key.json`;
    // A sparse file: read whole, it would take its size in memory before it failed to parse.
    const file = Deno.openSync(path, { write: true, create: true });
    file.truncateSync(64 * 1024 * 1024);
    file.close();
    assertThrows(
      () => readWrappedKey(dir),
      new RegExp(
        `^Cannot unlock backup: the backup's wrapped key "${path}" holds 67108864 bytes, more ` +
          `than a wrapped key \\(at most ${MOST_WRAPPED_KEY_BYTES}\\): put key.json back`,
      ),
    );
    Deno.removeSync(path);
    // A FIFO would hang the read for ever.
    new Deno.Command("mkfifo", { args: [path] }).outputSync();
    assertThrows(() => readWrappedKey(dir), /wrapped key ".*" is not a regular file: put key/);
    Deno.removeSync(path);
    Deno.writeFileSync(path, new Uint8Array([1, 2]));
    assertEquals(readWrappedKey(dir), new Uint8Array([1, 2]));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
