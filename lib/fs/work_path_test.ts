import { assert, assertEquals } from "../../tests/support/assert.ts";
import { claimWorkPath, workPath } from "./work_path.ts";
import { releaseLock } from "./flock.ts";

for (const type of ["file", "directory"] as const) {
  Deno.test(`a work ${type} another command removes before its maker locks it is made again`, () => {
    const dir = Deno.makeTempDirSync();
    const work = workPath(`${dir}/lightningd.sqlite3`, "restoring");
    const openSync = Deno.openSync;
    let removed = 0;
    // Another command's removeLeftovers, between the maker's create and its lock.
    Deno.openSync = (path, options) => {
      const handle = openSync(path, options);
      if (path === work && removed === 0) {
        removed++;
        Deno.removeSync(work, { recursive: true });
      }
      return handle;
    };
    let claim: Deno.FsFile;
    try {
      claim = claimWorkPath(work, type);
    } finally {
      Deno.openSync = openSync;
    }
    try {
      assertEquals(removed, 1);
      const now = Deno.lstatSync(work);
      assertEquals(type === "file" ? now.isFile : now.isDirectory, true);
      assertEquals([now.dev, now.ino], [claim.statSync().dev, claim.statSync().ino]);
      const other = Deno.openSync(work, { read: true });
      try {
        assert(!other.tryLockSync(true), "the maker holds the lock on what is at the path");
      } finally {
        other.close();
      }
    } finally {
      releaseLock(claim);
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
