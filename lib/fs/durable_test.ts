import { assertEquals } from "../../tests/support/assert.ts";
import { writeFileDurably } from "./durable.ts";

Deno.test("writeFileDurably: a secret is written 0600 to a new file, never into a stale temp file another holds open", () => {
  const dir = Deno.makeTempDirSync();
  try {
    // A crash's leftover temp file, 0644, that another user opened while they could.
    Deno.writeTextFileSync(`${dir}/backup.key.tmp`, "");
    Deno.chmodSync(`${dir}/backup.key.tmp`, 0o644);
    const held = Deno.openSync(`${dir}/backup.key.tmp`, { read: true });
    try {
      writeFileDurably(dir, "backup.key", new TextEncoder().encode("secret"), 0o600);
      const seen = new Uint8Array(16);
      assertEquals(held.readSync(seen), null, "the held temp file got the secret");
    } finally {
      held.close();
    }
    assertEquals(Deno.statSync(`${dir}/backup.key`).mode! & 0o777, 0o600);
    assertEquals(Deno.readTextFileSync(`${dir}/backup.key`), "secret");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
