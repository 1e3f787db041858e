import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { UnlinkCheck } from "./unlink_check.ts";

/** A directory with one file open for appends; both removed after `fn`. */
async function withOpenFile(
  fn: (dir: string, path: string, file: Deno.FsFile) => void | Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/live`;
  const file = Deno.openSync(path, { create: true, read: true, write: true });
  try {
    await fn(dir, path, file);
  } finally {
    file.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Longer than a kernel tick: a change after it gets a later mtime. */
const pastATick = () => new Promise((done) => setTimeout(done, 25));

/** A clock a minute ahead: every directory looks settled. */
const aMinuteAhead = () => Date.now() + 60_000;

/** A file that fails if asked for its link count. */
const unaskable = {
  statSync(): never {
    throw new Error("the file was asked");
  },
} as unknown as Deno.FsFile;

Deno.test("UnlinkCheck: a file unlinked from a settled directory is seen at the next call", async () => {
  await withOpenFile(async (dir, path, file) => {
    const check = new UnlinkCheck(dir, aMinuteAhead);
    await pastATick();
    assertEquals(check.unlinked(file, path), false);
    assertEquals(check.unlinked(file, path), false);
    Deno.removeSync(path);
    assertEquals(check.unlinked(file, path), true);
  });
});

Deno.test("UnlinkCheck: a settled directory as it was answers without asking the file", async () => {
  await withOpenFile((dir, path, file) => {
    const check = new UnlinkCheck(dir, aMinuteAhead);
    assertEquals(check.unlinked(file, path), false);
    assertEquals(check.unlinked(unaskable, path), false);
    // Any change to the directory (here a new file) sends the next call to the file again.
    Deno.writeFileSync(`${dir}/other`, new Uint8Array());
    assertThrows(() => check.unlinked(unaskable, path), /the file was asked/);
  });
});

Deno.test("UnlinkCheck: a file moved out of its directory, then unlinked there, is seen", async () => {
  await withOpenFile(async (dir, path, file) => {
    const check = new UnlinkCheck(dir, aMinuteAhead);
    await pastATick();
    Deno.renameSync(path, `${dir}.moved`);
    assertEquals(check.unlinked(file, path), false, "moved, it still has its link");
    Deno.removeSync(`${dir}.moved`);
    assertEquals(check.unlinked(file, path), true);
  });
});

Deno.test("UnlinkCheck: a directory removed and made again at its path is not taken for the old one", async () => {
  await withOpenFile(async (dir, path, file) => {
    const check = new UnlinkCheck(dir, aMinuteAhead);
    await pastATick();
    assertEquals(check.unlinked(file, path), false);
    Deno.removeSync(dir, { recursive: true });
    assertEquals(check.unlinked(file, path), true, "no directory: the file answers");
    Deno.mkdirSync(dir);
    assertEquals(check.unlinked(file, path), true);
  });
});

Deno.test("UnlinkCheck: a directory changed within the last 3 s is not trusted, even with its times as they were", async () => {
  await withOpenFile((dir, path, file) => {
    // Two changes inside one timestamp's resolution share their times (FAT keeps 2 s): set
    // back by hand here.
    const changed = new Date(Date.now() - 2_500);
    Deno.utimeSync(dir, changed, changed);
    const check = new UnlinkCheck(dir);
    assertEquals(check.unlinked(file, path), false);
    Deno.removeSync(path);
    Deno.utimeSync(dir, changed, changed);
    assertEquals(check.unlinked(file, path), true);
  });
});

Deno.test("UnlinkCheck: a wall clock set back drops what was recorded: the file is asked again", async () => {
  await withOpenFile((dir, path, file) => {
    let wall = Date.now() + 7_200_000;
    const check = new UnlinkCheck(dir, () => wall);
    assertEquals(check.unlinked(file, path), false);
    assertEquals(check.unlinked(unaskable, path), false);
    // An hour back, the directory still looks settled; a change stamped now could repeat a time.
    wall -= 3_600_000;
    assertThrows(() => check.unlinked(unaskable, path), /the file was asked/);
    assertEquals(check.unlinked(file, path), false, "recorded again at the new offset");
    assertEquals(check.unlinked(unaskable, path), false);
  });
});

Deno.test("UnlinkCheck: a directory's mtime ahead of the clock never settles", async () => {
  await withOpenFile((dir, path, file) => {
    const ahead = new Date(Date.now() + 3_600_000);
    Deno.utimeSync(dir, ahead, ahead);
    const check = new UnlinkCheck(dir);
    assertEquals(check.unlinked(file, path), false);
    assertThrows(() => check.unlinked(unaskable, path), /the file was asked/);
  });
});
