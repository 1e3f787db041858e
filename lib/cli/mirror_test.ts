import { assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { dumpDatabase } from "../../tests/support/dump.ts";
import { FakeLightningd } from "../../tests/support/fake_lightningd.ts";
import { PRE_4090_BACKUP } from "../../tests/support/fixtures.ts";
import { existsSync } from "../fs/exists.ts";
import { openReader } from "../backends/open.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { readLockFile, writeLockFile } from "../backup/lock_file.ts";
import { restoreBackup } from "../backup/restore.ts";
import { DataKey } from "../crypto/data_key.ts";
import { writeKeyFile } from "../crypto/key_file.ts";
import { mirror } from "./mirror.ts";
import { readChain } from "../format/chain.ts";
import { formatBackupId } from "../format/segment.ts";
import {
  assertSetUp,
  BufferedOutput,
  damageDatabase,
  leaveHotJournal,
  makeBackup,
  makeNodeDir,
  otherDiskAt,
  recordedChanges,
  removeNodeDir,
} from "../../tests/support/cli_testing.ts";

/** A node at the "restart" run's end (version 15), its file backup in step. */
async function node(): Promise<{ dir: string; base: string; url: string }> {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  const url = await makeBackup(`${base}/first`, recordedChanges(["fresh-start", "restart"]));
  writeLockFile(dir, { backend_url: url, note: 1 });
  return { dir, base, url };
}

/** The backup id of the file backup at `path`, as backup.lock's `backup_ids` has it. */
function idOf(path: string): string {
  return formatBackupId(readChain(path).backupId);
}

function restored(url: string, scratch: string): string {
  const path = `${scratch}/restored-${crypto.randomUUID()}.sqlite3`;
  restoreBackup(openReader(url), path);
  return dumpDatabase(path);
}

async function run(...args: string[]): Promise<BufferedOutput & { code: number }> {
  const output = new BufferedOutput();
  const code = await mirror(args, output);
  return Object.assign(output, { code });
}

Deno.test("mirror warns when the new copy leaves every destination on the database's filesystem, and only then", async () => {
  const cases: [
    string,
    (base: string) => string[],
    string,
    (base: string) => RegExp | undefined,
  ][] = [
    // Here the temporary directory really is on the database's filesystem.
    [
      "a copy beside the first",
      (base) => [`file://${base}/second`],
      "/nowhere",
      (base) =>
        new RegExp(
          `^Warning: the backup "${base}/first" and its copy "${base}/second" are on the same ` +
            `filesystem as the node's database ".*/lightningd.sqlite3": one disk failure loses ` +
            `them all: put the backup on another disk, or add a copy on another disk or a ` +
            `remote one .*mirror <url> --lightning-dir`,
        ),
    ],
    ["a copy on another disk", (base) => [`file://${base}/mnt/copy`], "mnt", () => undefined],
    [
      "an async copy on another disk",
      (base) => [`file://${base}/mnt/copy`, "--async"],
      "mnt",
      () => undefined,
    ],
    [
      "a copy beside a first on another disk",
      (base) => [`file://${base}/second`],
      "first",
      () => undefined,
    ],
  ];
  for (const [what, args, mount, warning] of cases) {
    const { dir, base } = await node();
    try {
      Deno.mkdirSync(`${base}/mnt`);
      const output = new BufferedOutput();
      const code = await mirror(
        [...args(base), "--lightning-dir", dir],
        output,
        otherDiskAt(`${base}/${mount}`),
      );
      assertSetUp(code, output, dir, warning(base), what);
    } finally {
      removeNodeDir(dir);
    }
  }
});

Deno.test("mirror adds a copy of the node's database as a destination; the plugin writes both", async () => {
  const { dir, base, url } = await node();
  try {
    const second = `file://${base}/second`;
    const done = await run(second, "--lightning-dir", dir);
    assertEquals(done.code, 0, done.transcript);
    assertMatch(done.stdout[0], /^Created the backup .*second from .* at version 15, and added it/);
    assertEquals(readLockFile(dir), {
      backend_url: url,
      note: 1,
      mirror_urls: [second],
      backup_ids: { [second]: idOf(`${base}/second`) },
    });
    const database = `${dir}/lightningd.sqlite3`;
    assertEquals(restored(second, base), dumpDatabase(database));

    const lightningd = FakeLightningd.spawn({ lightningDir: dir });
    for (let i = 0; i < 3; i++) {
      const outcome = await lightningd.transaction([
        `INSERT INTO vars (name, intval) VALUES ('mirrored-${i}', ${i})`,
      ]);
      assertEquals(outcome, "committed", lightningd.aborted);
    }
    assertEquals((await lightningd.close()).code, 0, await lightningd.stderr());
    for (const copy of [url, second]) assertEquals(restored(copy, base), dumpDatabase(database));
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("mirror copies the database a wallet= line of lightningd's config names", async () => {
  const { dir, base, url } = await node();
  try {
    Deno.mkdirSync(`${base}/ssd`);
    Deno.renameSync(`${dir}/lightningd.sqlite3`, `${base}/ssd/node.sqlite3`);
    Deno.writeTextFileSync(`${dir}/config`, `wallet=sqlite3://${base}/ssd/node.sqlite3\n`);
    const second = `file://${base}/second`;
    const done = await run(second, "--lightning-dir", dir);
    assertEquals(done.code, 0, done.transcript);
    assertMatch(
      done.stdout[0],
      /^Created the backup .*second from ".*\/ssd\/node\.sqlite3" at version 15/,
    );
    assertEquals(restored(second, base), dumpDatabase(`${base}/ssd/node.sqlite3`));
    assertEquals(readLockFile(dir), {
      backend_url: url,
      note: 1,
      mirror_urls: [second],
      backup_ids: { [second]: idOf(`${base}/second`) },
    });
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("mirror refuses a destination named or present already, copies out of step, and encryption", async () => {
  const { dir, base, url } = await node();
  try {
    Deno.renameSync(`${dir}/backup.lock`, `${dir}/backup.lock.away`);
    const noLock = await run(`file://${base}/second`, "--lightning-dir", dir);
    assertEquals(noLock.stderr, [
      `Cannot add the destination: no backup.lock in "${dir}": give the node's network ` +
      `directory with --lightning-dir, or make its backup with init first`,
    ]);
    Deno.renameSync(`${dir}/backup.lock.away`, `${dir}/backup.lock`);
    const again = await run(url, "--lightning-dir", dir);
    assertEquals(again.code, 1);
    assertMatch(again.stderr[0], /names file:.*first already: nothing to do/);
    // The same backup spelled otherwise is the backup itself, not a new path that exists.
    const slash = await run(`${url}/`, "--lightning-dir", dir);
    assertEquals(slash.stderr, [
      `Cannot add the destination: "${dir}/backup.lock" names ${url}/ already (as ${url}): ` +
      `nothing to do`,
    ]);
    Deno.mkdirSync(`${base}/taken`);
    const taken = await run(`file://${base}/taken`, "--lightning-dir", dir);
    assertMatch(taken.stderr[0], /taken" already exists: choose a new path/);

    // The first backup two changes ahead of the database: the copies would not start equal.
    const backend = FileBackend.open(url, `${base}/first`);
    await backend.append({ version: 16, statements: ["SELECT 1"] });
    await backend.append({ version: 17, statements: ["SELECT 1"] });
    backend.close();
    const ahead = await run(`file://${base}/second`, "--lightning-dir", dir);
    assertMatch(ahead.stderr[0], /holds version 17 and the database 15: .*cln-backup doctor/);

    writeKeyFile(dir, await DataKey.generate());
    const sealed = await run(`file://${base}/second`, "--lightning-dir", dir);
    assertMatch(sealed.stderr[0], /the backup is encrypted/);
    assertEquals(readLockFile(dir), { backend_url: url, note: 1 }, "backup.lock unchanged");
    assertEquals([...Deno.readDirSync(base)].some((e) => e.name === "second"), false);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("mirror of a database lightningd left in the middle of a write says how to end that write", async () => {
  const { dir, base, url } = await node();
  try {
    leaveHotJournal(dir);
    const hot = await run(`file://${base}/second`, "--lightning-dir", dir);
    assertEquals(hot.stderr, [
      `Cannot add the destination: "${dir}/lightningd.sqlite3" has a hot journal ` +
      `("${dir}/lightningd.sqlite3-journal"): lightningd stopped in the middle of a write, ` +
      `which only a writer may roll back: start lightningd and stop it ("lightning-cli ` +
      `stop"), then run this again`,
    ]);
    assertEquals(readLockFile(dir), { backend_url: url, note: 1 }, "backup.lock unchanged");
    assertEquals([...Deno.readDirSync(base)].some((e) => e.name === "second"), false);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("mirror of a damaged database names it and says what to do", async () => {
  const { dir, base, url } = await node();
  try {
    damageDatabase(dir);
    const damaged = await run(`file://${base}/second`, "--lightning-dir", dir);
    assertEquals(damaged.code, 1);
    assertEquals(damaged.stderr, [
      `Cannot add the destination: "${dir}/lightningd.sqlite3" is damaged (database disk ` +
      `image is malformed), and lightningd cannot run on it either: check the disk it is on, ` +
      `then restore the database from the node's backup ("cln-backup restore")`,
    ]);
    assertEquals(readLockFile(dir), { backend_url: url, note: 1 }, "backup.lock unchanged");
    assertEquals([...Deno.readDirSync(base)].some((e) => e.name === "second"), false);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("mirror of a copy backup.lock names without its backup id ties it, and changes nothing else", async () => {
  const { dir, base, url } = await node();
  try {
    // A copy made before backup.lock recorded ids: the plugin cannot tell another backup there.
    const copy = `file://${base}/copy`;
    await makeBackup(`${base}/copy`, recordedChanges(["fresh-start", "restart"]));
    writeLockFile(dir, { backend_url: url, note: 1, async_urls: [copy] });
    const launcher = `${dir}/cln-backup-plugin`;
    Deno.writeTextFileSync(launcher, "as it was");
    const tied = await run(copy, "--lightning-dir", dir);
    assertEquals(tied.code, 0, tied.transcript);
    assertMatch(
      tied.stdout[0],
      /^Tied .*copy, in backup\.lock already, to the backup it holds, [0-9a-f]{32}/,
    );
    assertEquals(readLockFile(dir), {
      backend_url: url,
      note: 1,
      async_urls: [copy],
      backup_ids: { [copy]: idOf(`${base}/copy`) },
    });
    assertEquals(Deno.readTextFileSync(launcher), "as it was");
    const again = await run(copy, "--lightning-dir", dir);
    assertEquals(again.code, 1);
    assertMatch(again.stderr[0], /names .*copy already: nothing to do/);
    // Gone from its disk: nothing to tie, and backup.lock stays as it was.
    const gone = `file://${base}/gone`;
    writeLockFile(dir, { backend_url: url, async_urls: [gone] });
    const missing = await run(gone, "--lightning-dir", dir);
    assertEquals(missing.code, 1);
    assertEquals(missing.stderr, [
      `Cannot add the destination: "${dir}/backup.lock" names ${gone} already, and its backup ` +
      `id, which this would record, cannot be read: no cln-backup backup at "${base}/gone"`,
    ]);
    assertEquals(readLockFile(dir), { backend_url: url, async_urls: [gone] });
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("mirror --async adds an asynchronous copy; the plugin's copy catches up with the node", async () => {
  const { dir, base, url } = await node();
  try {
    const copy = `file://${base}/copy`;
    const done = await run(copy, "--async", "--lightning-dir", dir);
    assertEquals(done.code, 0, done.transcript);
    assertMatch(done.stdout[0], /added it to "async_urls" in .* \(2 destinations\)/);
    assertEquals(readLockFile(dir), {
      backend_url: url,
      note: 1,
      async_urls: [copy],
      backup_ids: { [copy]: idOf(`${base}/copy`) },
    });
    assertMatch(
      Deno.readTextFileSync(`${dir}/cln-backup-plugin`),
      new RegExp(`--allow-write=${base}/first,${base}/copy'`),
    );
    const again = await run(copy, "--lightning-dir", dir);
    assertEquals(again.code, 1);
    assertMatch(again.stderr[0], /names .*copy already: nothing to do/);

    const lightningd = FakeLightningd.spawn({ lightningDir: dir });
    for (let i = 0; i < 3; i++) {
      const outcome = await lightningd.transaction([
        `INSERT INTO vars (name, intval) VALUES ('copied-${i}', ${i})`,
      ]);
      assertEquals(outcome, "committed", lightningd.aborted);
    }
    let state: unknown;
    for (let i = 0; i < 200 && state !== "caught-up"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      const status = (await lightningd.request("backup-status", {})).result as {
        async_destinations: { state: string }[];
      };
      state = status.async_destinations[0].state;
    }
    assertEquals(state, "caught-up");
    assertEquals((await lightningd.close()).code, 0, await lightningd.stderr());
    const database = dumpDatabase(`${dir}/lightningd.sqlite3`);
    for (const from of [url, copy]) assertEquals(restored(from, base), database);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("mirror that cannot write the launcher removes the copy it made and changes nothing", async () => {
  const { dir, base, url } = await node();
  try {
    // Deno's permission flags cannot name a path with a comma: the launcher cannot grant it.
    const comma = `file://${base}/sec,ond`;
    const refused = await run(comma, "--lightning-dir", dir);
    assertEquals(refused.code, 1);
    assertMatch(refused.stderr[0], /^Cannot grant access to ".*sec,ond": .* choose a path without/);
    assertEquals(readLockFile(dir), { backend_url: url, note: 1 }, "backup.lock unchanged");
    assertEquals([...Deno.readDirSync(base)].some((e) => e.name === "sec,ond"), false);
    // Nothing is left that a rerun at a good path would trip over.
    const second = `file://${base}/second`;
    assertEquals((await run(second, "--lightning-dir", dir)).code, 0);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("mirror of a node whose backup.lock names the Python plugin's .dbak refuses, naming upgrade", async () => {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    const dbak = `${base}/backup.dbak`;
    Deno.copyFileSync(PRE_4090_BACKUP, dbak);
    writeLockFile(dir, { backend_url: `file://${dbak}` });
    const refused = await run(`file://${base}/second`, "--lightning-dir", dir);
    assertEquals(refused.code, 1);
    assertEquals(refused.stderr, [
      `Cannot add the destination: file://${dbak} is the Python plugin's v1 backup, which ` +
      `this plugin does not append to: convert it first with "cln-backup upgrade ` +
      `--lightning-dir '${dir}'", then add the copy`,
    ]);
    assertEquals(readLockFile(dir), { backend_url: `file://${dbak}` });
    assertEquals(existsSync(`${base}/second`), false);
  } finally {
    removeNodeDir(dir);
  }
});
