import { assert, assertEquals, assertMatch, assertThrows } from "../../tests/support/assert.ts";
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
    const path = makeScratchDir("fetch", parent);
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
  const held = `cln-backup-s3-${gone}-0a1b2c3d4e`;
  let holder: Deno.FsFile | undefined;
  try {
    const kept = [
      `cln-backup-verify-${sleeper.pid}-9f8e7d6c5b`, // its process runs
      held, // its process is gone, but someone holds its lock (another pid namespace)
      `cln-backup-fetch-5f3c1a`, // no pid: made by an older version, or not ours
      `other-${gone}-0a1b2c`, // not a scratch dir's name
      // The operator's, named like one but of no kind cln-backup makes: a dated copy, an old one.
      "cln-backup-mainnet-20241205-copy",
      `cln-backup-node1-${gone}-old`,
      `cln-backup-s3-rekey-${gone}-5f59358388b6f7fa`,
      "cln-backup-verify-20241205-0a1b2c3d", // a date, not a pid
      `cln-backup-s3-${gone}-dec`, // a word that is hex, shorter than Deno's random part
    ];
    for (const name of [...kept, `cln-backup-fetch-${gone}-0a1b2c3d4e5f`]) {
      Deno.mkdirSync(`${parent}/${name}`);
      Deno.writeTextFileSync(`${parent}/${name}/copy`, "a fetched backup");
    }
    Deno.writeTextFileSync(
      `${parent}/cln-backup-init-${gone}-0a1b2d3c4b`,
      "a file, not a directory",
    );
    Deno.symlinkSync(`${parent}/${held}`, `${parent}/cln-backup-init-${gone}-0a1b2e3d4c`);
    kept.push(`cln-backup-init-${gone}-0a1b2d3c4b`, `cln-backup-init-${gone}-0a1b2e3d4c`);
    holder = Deno.openSync(`${parent}/${held}`, { read: true });
    assert(holder.tryLockSync(true));

    const path = makeScratchDir("verify", parent);
    assertEquals(names(parent), [...kept, path.slice(parent.length + 1)].sort());
    removeScratchDir(path);
  } finally {
    if (holder) releaseLock(holder);
    sleeper.kill();
    await sleeper.status;
    Deno.removeSync(parent, { recursive: true });
  }
});

/**
 * Runs `make` while `Deno.makeTempDirSync` calls `between` on the first directory it makes in
 * `parent`: another process acting between a scratch dir's mkdir and its lock. Then uses what
 * `make` returned as a maker would, removes it, and checks nothing is left.
 */
function makeWithRace(parent: string, between: (made: string) => void, make: () => string): void {
  const original = Deno.makeTempDirSync;
  let raced = false;
  Deno.makeTempDirSync = (options) => {
    const made = original(options);
    if (options?.dir === parent && !raced) {
      raced = true;
      between(made);
    }
    return made;
  };
  let path: string;
  try {
    path = make();
  } finally {
    Deno.makeTempDirSync = original;
  }
  assert(raced);
  Deno.writeTextFileSync(`${path}/restored.sqlite3`, "a database");
  const other = Deno.openSync(path, { read: true });
  try {
    assertEquals(other.tryLockSync(true), false, "its maker holds its lock");
  } finally {
    other.close();
  }
  removeScratchDir(path);
  assertEquals(names(parent), []);
}

Deno.test("a scratch dir another process sweeps before its maker locks it is not used", () => {
  // The sweeper cannot read /proc (backup-cli's permissions): the lock alone tells it that the
  // maker lives, and a sweep between the maker's mkdir and its lock finds none.
  const parent = Deno.makeTempDirSync();
  const scripts = Deno.makeTempDirSync();
  const sweeper = `${scripts}/sweep.ts`;
  Deno.writeTextFileSync(
    sweeper,
    `import { makeScratchDir, removeScratchDir } from ${
      JSON.stringify(new URL("./scratch_dir.ts", import.meta.url).href)
    };\nremoveScratchDir(makeScratchDir("fetch", Deno.args[0]));\n`,
  );
  try {
    makeWithRace(parent, () => {
      const swept = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          `--allow-read=${parent}`,
          `--allow-write=${parent}`,
          sweeper,
          parent,
        ],
      }).outputSync();
      assertEquals(swept.code, 0, new TextDecoder().decode(swept.stderr));
    }, () => makeScratchDir("verify", parent));
  } finally {
    Deno.removeSync(parent, { recursive: true });
    Deno.removeSync(scripts, { recursive: true });
  }
});

Deno.test("a scratch dir a sweep holds as its maker opens it is not used once removed", async () => {
  const parent = Deno.makeTempDirSync();
  const scripts = Deno.makeTempDirSync();
  const holder = `${scripts}/hold.ts`;
  // Another process's sweep: it took the lock before the maker, removes the dir, lets go.
  Deno.writeTextFileSync(
    holder,
    `const [path, marker] = Deno.args;
    const handle = Deno.openSync(path, { read: true });
    if (!handle.tryLockSync(true)) Deno.exit(1);
    Deno.writeTextFileSync(marker, "");
    await new Promise((resolve) => setTimeout(resolve, 300));
    Deno.removeSync(path, { recursive: true });
    handle.unlockSync();
    handle.close();`,
  );
  let child: Deno.ChildProcess | undefined;
  try {
    makeWithRace(parent, (made) => {
      child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", holder, made, `${scripts}/locked`],
      }).spawn();
      while (!names(scripts).includes("locked")) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }, () => makeScratchDir("verify", parent));
  } finally {
    await child?.status;
    Deno.removeSync(parent, { recursive: true });
    Deno.removeSync(scripts, { recursive: true });
  }
});

Deno.test("where the file system has no flock, a scratch dir is made unlocked, under a name no sweep takes", () => {
  const parent = Deno.makeTempDirSync();
  const lockSync = Deno.FsFile.prototype.lockSync;
  try {
    Deno.FsFile.prototype.lockSync = () => {
      throw new Error("No locks available (os error 37)");
    };
    let path: string;
    try {
      path = makeScratchDir("fetch", parent);
    } finally {
      Deno.FsFile.prototype.lockSync = lockSync;
    }
    assertMatch(path, new RegExp(`^${parent}/cln-backup-fetch-[0-9a-f]+$`));
    assertEquals(names(parent), [path.slice(parent.length + 1)]);
    removeScratchDir(path);
    assertEquals(names(parent), []);
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});

Deno.test("a scratch dir that cannot be made says where it was to be, why, and what to do", () => {
  const parent = Deno.makeTempDirSync({ prefix: "cln-backup-scratch-test-" });
  try {
    Deno.writeTextFileSync(`${parent}/file`, "");
    assertThrows(
      () => makeScratchDir("fetch", `${parent}/file`),
      new RegExp(
        `^cannot make a scratch directory in "${parent}/file": not a directory: ` +
          `check that "${parent}/file" is a directory this user may write$`,
      ),
    );
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});

Deno.test("a scratch dir its process has no permission for is backup-cli's bug: NotCapable, not the operator's directory", () => {
  const parent = Deno.makeTempDirSync({ prefix: "cln-backup-scratch-test-" });
  try {
    const probe = `${parent}/probe.ts`;
    Deno.writeTextFileSync(
      probe,
      `import { makeScratchDir } from ${
        JSON.stringify(new URL("./scratch_dir.ts", import.meta.url).href)
      };\ntry {\n  makeScratchDir("verify", Deno.args[0]);\n} catch (error) {\n` +
        `  console.log(error.constructor.name);\n}\n`,
    );
    // Read, but no write: the table (lib/cli/permissions.ts) missed the directory.
    const run = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", `--allow-read`, probe, parent],
    }).outputSync();
    assertEquals(run.code, 0, new TextDecoder().decode(run.stderr));
    assertEquals(new TextDecoder().decode(run.stdout), "NotCapable\n");
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});
