import { assertEquals } from "../../../tests/support/assert.ts";
import { createFileBackup } from "./create.ts";

Deno.test("a new file backup's directory is its owner's alone, whatever the umask", () => {
  const parent = Deno.makeTempDirSync();
  try {
    createFileBackup(`${parent}/backup`);
    assertEquals(Deno.statSync(`${parent}/backup`).mode! & 0o777, 0o700);
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});
