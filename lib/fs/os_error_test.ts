import { assertEquals } from "../../tests/support/assert.ts";
import { explainOsError } from "./os_error.ts";

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
}

Deno.test("explainOsError: the call, its path, the OS's reason and what to do", () => {
  const dir = Deno.makeTempDirSync();
  assertEquals(
    explainOsError(caught(() => Deno.renameSync(`${dir}/a`, `${dir}/b`))),
    `no such file or directory when renaming "${dir}/a" to "${dir}/b": check that "${dir}" ` +
      `exists, or choose another path`,
  );
  Deno.writeTextFileSync(`${dir}/file`, "");
  assertEquals(
    explainOsError(caught(() => Deno.mkdirSync(`${dir}/file/sub`))),
    `not a directory when creating the directory "${dir}/file/sub": a part of "${dir}/file" is ` +
      `not a directory: check the path`,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("explainOsError: anything else is left as it is", () => {
  assertEquals(
    explainOsError(new Error("Cannot restore backup: database already exists")),
    undefined,
  );
  assertEquals(explainOsError("a string"), undefined);
});
