import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { writeFileDurably } from "../fs/durable.ts";
import { explainOsError } from "../fs/os_error.ts";
import { KeyMayBeStoredError } from "../backends/key_replaced.ts";
import { type DurableWrite, storeKeyFile } from "./store_key_file.ts";

const ACTION = "Cannot rekey backup";
const OLD = new TextEncoder().encode('{"old": true}');
const NEW = new TextEncoder().encode('{"new": true}');

/** An error as Deno gives a full disk's. */
const noSpace = () =>
  Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
const io = () => Object.assign(new Error("Input/output error (os error 5)"), { code: "EIO" });

/** A write that fails with `error()` before its rename, or once the new file is in place. */
function failing(error: () => Error, afterRename: boolean): DurableWrite {
  return (dir, name, bytes) => {
    if (afterRename) Deno.writeFileSync(`${dir}/${name}`, bytes);
    throw error();
  };
}

function withKeyDir(fn: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-store-key-" });
  try {
    Deno.writeFileSync(`${dir}/key.json`, OLD);
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("storeKeyFile: a write that fails once the new key.json is in place says it may hold the new wraps", () => {
  for (const error of [io, noSpace]) {
    withKeyDir((dir) => {
      const thrown = assertThrows(() => storeKeyFile(ACTION, dir, NEW, failing(error, true)));
      assertEquals(thrown instanceof KeyMayBeStoredError, true, thrown.message);
      assertEquals(
        thrown.message,
        `${ACTION}: the new key.json was put in place in "${dir}", but its write did not ` +
          `finish (${error().message})`,
      );
      assertEquals(Deno.readFileSync(`${dir}/key.json`), NEW);
    });
  }
});

Deno.test("storeKeyFile: a write that fails before its rename says key.json is as it was", () => {
  withKeyDir((dir) => {
    const full = assertThrows(() => storeKeyFile(ACTION, dir, NEW, failing(noSpace, false)));
    assertEquals(
      full.message,
      `${ACTION}: the file system of "${dir}" is full (no space or quota left); key.json is ` +
        `as it was (the old secrets open it): free some space on it, then run this again`,
    );
    const failed = assertThrows(() => storeKeyFile(ACTION, dir, NEW, failing(io, false)));
    assertEquals(
      failed.message,
      `Input/output error (os error 5): key.json is as it was (the old secrets open it)`,
    );
    assertEquals([full, failed].some((e) => e instanceof KeyMayBeStoredError), false);
    assertEquals(Deno.readFileSync(`${dir}/key.json`), OLD);
  });
});

Deno.test("storeKeyFile: a refused write before its rename keeps the OS error's explanation and says key.json is as it was", () => {
  withKeyDir((dir) => {
    // As Deno words a backup directory the rekey's user may read but not write.
    const denied = () =>
      Object.assign(new Error(`Permission denied (os error 13): open '${dir}/key.json.tmp'`), {
        code: "EACCES",
      });
    const thrown = assertThrows(() => storeKeyFile(ACTION, dir, NEW, failing(denied, false)));
    // What the CLI prints (lib/cli/args.ts): the explanation, if the message still has one.
    assertEquals(
      explainOsError(thrown) ?? thrown.message,
      `permission denied when opening "${dir}/key.json.tmp": check the permissions of "${dir}", ` +
        `or run this as the user who owns it: key.json is as it was (the old secrets open it)`,
    );
  });
});

Deno.test("storeKeyFile: a write that succeeds replaces key.json", () => {
  withKeyDir((dir) => {
    storeKeyFile(ACTION, dir, NEW, writeFileDurably);
    assertEquals(Deno.readFileSync(`${dir}/key.json`), NEW);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["key.json"]);
  });
});
