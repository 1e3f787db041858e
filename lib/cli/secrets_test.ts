import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { givenPassphrase, PASSPHRASE_ENV } from "./secrets.ts";

Deno.test("a relative --passphrase-file is the operator's (deno task's INIT_CWD), a missing one named", () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  // A stand-in environment: tests run in parallel in one process.
  const env = { get: (name: string) => name === "INIT_CWD" ? dir : undefined };
  try {
    Deno.writeTextFileSync(`${dir}/pass`, "correct horse\nsecond line\n");
    assertEquals(givenPassphrase("pass", PASSPHRASE_ENV, env), "correct horse");
    const missing = assertThrows(() => givenPassphrase("nopass", PASSPHRASE_ENV, env));
    assertEquals(
      missing.message,
      `Cannot read the passphrase file "nopass": there is no file "${dir}/nopass": check the path`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
