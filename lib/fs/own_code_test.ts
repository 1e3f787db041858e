import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { ownCode } from "./own_code.ts";

const said = (cause: string) => `cannot load (${cause})`;

Deno.test("ownCode: a module that is not there is Deno's first line, no colours", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "own-code-" });
  try {
    Deno.writeTextFileSync(`${dir}/a.ts`, `import "./gone.ts";\nexport const a = 1;\n`);
    const error = await assertRejects(() => ownCode(import(`${dir}/a.ts`), said));
    assertEquals(error.message, `cannot load (Module not found "file://${dir}/gone.ts".)`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("ownCode: a module lightningd's user may not read says why, not only that it failed", async () => {
  // What Deno 2.9 throws for an import of a file its user may not read (mode 0600, another
  // owner: an update made under umask 077), seen running as another user than the owner.
  const denied = new TypeError(
    "Import 'file:///opt/cln-backup/lib/plugin/remote_destinations.ts' failed.\n" +
      "    0: Permission denied (os error 13)",
  );
  const error = await assertRejects(() => ownCode(Promise.reject(denied), said));
  assertEquals(
    error.message,
    "cannot load (Import 'file:///opt/cln-backup/lib/plugin/remote_destinations.ts' failed: " +
      "Permission denied (os error 13))",
  );
});

Deno.test("ownCode: a module that imports a name another no longer exports (a copy changed mid-update) is one line", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "own-code-" });
  try {
    Deno.writeTextFileSync(`${dir}/b.ts`, `export const renamed = 1;\n`);
    Deno.writeTextFileSync(`${dir}/a.ts`, `import { old } from "./b.ts";\nexport const a = old;\n`);
    const error = await assertRejects(() => ownCode(import(`${dir}/a.ts`), said));
    assertEquals(
      error.message,
      `cannot load (The requested module './b.ts' does not provide an export named 'old' at ` +
        `file://${dir}/a.ts:1:10)`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
