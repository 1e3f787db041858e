import { assertEquals } from "../../tests/support/assert.ts";
import { explainOsError, isOutOfRoom } from "./os_error.ts";

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

Deno.test("isOutOfRoom: ENOSPC, EDQUOT and SQLite's full database, also as a cause; nothing else", () => {
  const coded = (code: string) => Object.assign(new Error(code), { code });
  assertEquals(isOutOfRoom(coded("ENOSPC")), true);
  assertEquals(isOutOfRoom(coded("EDQUOT")), true);
  assertEquals(isOutOfRoom(new Error("database or disk is full")), true);
  assertEquals(isOutOfRoom(new Error("wrapped", { cause: coded("ENOSPC") })), true);
  assertEquals(isOutOfRoom(coded("EIO")), false);
  assertEquals(isOutOfRoom(new Error("wrapped", { cause: coded("EIO") })), false);
  assertEquals(isOutOfRoom(undefined), false);
});
