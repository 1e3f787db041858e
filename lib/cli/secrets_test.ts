import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { givenPassphrase } from "./secrets.ts";

Deno.test("a relative --passphrase-file is the operator's (deno task's INIT_CWD), a missing one named", () => {
  const dir = Deno.makeTempDirSync({ prefix: "secrets-" });
  const before = Deno.env.get("INIT_CWD");
  Deno.env.set("INIT_CWD", dir);
  try {
    Deno.writeTextFileSync(`${dir}/pass`, "correct horse\nsecond line\n");
    assertEquals(givenPassphrase("pass"), "correct horse");
    const missing = assertThrows(() => givenPassphrase("nopass"));
    assertEquals(
      missing.message,
      `Cannot read the passphrase file "nopass": there is no file "${dir}/nopass": check the path`,
    );
  } finally {
    if (before === undefined) Deno.env.delete("INIT_CWD");
    else Deno.env.set("INIT_CWD", before);
    Deno.removeSync(dir, { recursive: true });
  }
});
