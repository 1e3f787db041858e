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

Deno.test("makeDirs whose parent another command takes back (empty, its run failed) before its child is made makes that parent too", () => {
  const dir = Deno.makeTempDirSync({ prefix: "made-dirs-" });
  const mkdirSync = Deno.mkdirSync;
  try {
    // Another init-tls made the root, failed, and takes it back between this add-node's look
    // at it and the mkdir of its nodes directory.
    Deno.mkdirSync(`${dir}/root`);
    let raced = false;
    Deno.mkdirSync = (path, options) => {
      if (!raced && String(path) === `${dir}/root/nodes`) {
        raced = true;
        Deno.removeSync(`${dir}/root`);
      }
      mkdirSync(path, options);
    };
    assertEquals(makeDirs(`${dir}/root/nodes`, 0o700), [`${dir}/root`, `${dir}/root/nodes`]);
    assertEquals(existsSync(`${dir}/root/nodes`), true);
  } finally {
    Deno.mkdirSync = mkdirSync;
    Deno.removeSync(dir, { recursive: true });
  }
});
