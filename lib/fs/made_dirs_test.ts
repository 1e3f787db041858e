import { assertEquals } from "../../tests/support/assert.ts";
import { makeDirs, removeMadeDirs } from "./made_dirs.ts";
import { existsSync } from "./exists.ts";

Deno.test("makeDirs names the directories it made; removeMadeDirs takes back only those, while empty", () => {
  const dir = Deno.makeTempDirSync({ prefix: "made-dirs-" });
  try {
    assertEquals(makeDirs(`${dir}/a/b/c`, 0o700), [`${dir}/a`, `${dir}/a/b`, `${dir}/a/b/c`]);
    assertEquals(makeDirs(`${dir}/a/b`, 0o700), []);
    removeMadeDirs([`${dir}/a`, `${dir}/a/b`, `${dir}/a/b/c`]);
    assertEquals([...Deno.readDirSync(dir)], []);
    // Another's file in one of them: it and the directories around it stay.
    const made = makeDirs(`${dir}/x/y`, 0o700);
    Deno.writeTextFileSync(`${dir}/x/theirs`, "");
    removeMadeDirs(made);
    assertEquals([existsSync(`${dir}/x/y`), existsSync(`${dir}/x/theirs`)], [false, true]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
