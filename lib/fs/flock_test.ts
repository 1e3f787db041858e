import { assert, assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { releaseLock, tryLock } from "./flock.ts";

Deno.test("tryLock takes a free lock, and closes a file whose lock another holds", () => {
  const path = Deno.makeTempFileSync();
  try {
    const first = Deno.openSync(path, { read: true });
    assert(tryLock(first));
    const second = Deno.openSync(path, { read: true });
    assertEquals(tryLock(second), false);
    assert(assertThrows(() => second.statSync()) instanceof Deno.errors.BadResource);
    releaseLock(first);
    const third = Deno.openSync(path, { read: true });
    assert(tryLock(third), "released with releaseLock, the lock is free again");
    releaseLock(third);
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("tryLock closes the file when taking the lock fails", () => {
  let closed = false;
  const failing = {
    tryLockSync: () => {
      throw new Error("No locks available (os error 37)");
    },
    close: () => closed = true,
  } as unknown as Deno.FsFile;
  assertThrows(() => tryLock(failing), /No locks available/);
  assert(closed);
});
