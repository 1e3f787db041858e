import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { makeScratchDir, removeScratchDir } from "./scratch_dir.ts";
import { releaseLock } from "./flock.ts";

/** The pid of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map(({ name }) => name).sort();
}

Deno.test("a scratch dir carries its maker's pid, is locked while it lives, and goes", () => {
  const parent = Deno.makeTempDirSync();
  try {
    const path = makeScratchDir("cln-backup-fetch-", parent);
    assertMatch(path, new RegExp(`^${parent}/cln-backup-fetch-${Deno.pid}-[0-9a-f]+$`));
    const other = Deno.openSync(path, { read: true });
    try {
      assertEquals(other.tryLockSync(true), false, "its maker holds its lock");
    } finally {
      other.close();
    }
    Deno.writeTextFileSync(`${path}/restored.sqlite3`, "a database");
    removeScratchDir(path);
    assertEquals(names(parent), []);
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});

Deno.test("a scratch dir's maker removes what killed processes left, and only that", async () => {
  const parent = Deno.makeTempDirSync();
  const gone = await deadPid();
  const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const held = `cln-backup-s3-${gone}-0a1b2c`;
  let holder: Deno.FsFile | undefined;
  try {
    const kept = [
      `cln-backup-verify-${sleeper.pid}-9f8e7d`, // its process runs
      held, // its process is gone, but someone holds its lock (another pid namespace)
      `cln-backup-fetch-5f3c1a`, // no pid: made by an older version, or not ours
      `other-${gone}-0a1b2c`, // not a scratch dir's name
    ];
    for (const name of [...kept, `cln-backup-fetch-${gone}-0a1b2c`]) {
      Deno.mkdirSync(`${parent}/${name}`);
      Deno.writeTextFileSync(`${parent}/${name}/copy`, "a fetched backup");
    }
    Deno.writeTextFileSync(`${parent}/cln-backup-init-${gone}-0a1b2d`, "a file, not a directory");
    Deno.symlinkSync(`${parent}/${held}`, `${parent}/cln-backup-init-${gone}-0a1b2e`);
    kept.push(`cln-backup-init-${gone}-0a1b2d`, `cln-backup-init-${gone}-0a1b2e`);
    holder = Deno.openSync(`${parent}/${held}`, { read: true });
    assert(holder.tryLockSync(true));

    const path = makeScratchDir("cln-backup-verify-", parent);
    assertEquals(names(parent), [...kept, path.slice(parent.length + 1)].sort());
    removeScratchDir(path);
  } finally {
    if (holder) releaseLock(holder);
    sleeper.kill();
    await sleeper.status;
    Deno.removeSync(parent, { recursive: true });
  }
});
