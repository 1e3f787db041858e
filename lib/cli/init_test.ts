import { readChain } from "../format/chain.ts";
import { formatBackupId } from "../format/segment.ts";
import type { BackupReader } from "../backends/backend.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/support/assert.ts";
import { dumpDatabase } from "../../tests/support/dump.ts";
import { FakeLightningd } from "../../tests/support/fake_lightningd.ts";
import { loadFixture, PRE_4090_BACKUP } from "../../tests/support/fixtures.ts";
import { DatabaseSync } from "node:sqlite";
import { openBackend, openReader } from "../backends/open.ts";
import { restoreBackup } from "../backup/restore.ts";
import { init, initTarget } from "./init.ts";
import { UsageError } from "./args.ts";
import { unlockReader } from "./unlock.ts";
import { ageRecipientOf, newAgeIdentity } from "../crypto/primitives.ts";
import {
  assertSetUp,
  BufferedOutput,
  damageDatabase,
  leaveHotJournal,
  makeNodeDir,
  otherDiskAt,
  removeNodeDir,
  setUpWarnings,
} from "../../tests/support/cli_testing.ts";

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs init expecting a refusal: exit 1, one line on stderr, nothing written. */
async function refused(dir: string, args: string[], pattern: RegExp): Promise<void> {
  const before = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  const output = new BufferedOutput();
  assertEquals(await init(args, output), 1);
  assertEquals(output.stderr.length, 1, output.stderr.join("\n"));
  assertMatch(output.stderr[0], pattern);
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), before);
}

Deno.test("init on an existing node: the backup holds its version, and the plugin continues it", async () => {
  const dir = makeNodeDir("fresh-start");
  const url = `file://${Deno.realPathSync(`${dir}/..`)}/backups/node`;
  const output = new BufferedOutput();
  assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.stderr.join("\n"));

  const launcher = `${dir}/cln-backup-plugin`;
  assertEquals(output.stdout.at(-1), `important-plugin=${launcher}`);
  assertMatch(output.stdout.at(-2)!, /important-plugin makes lightningd stop if the plugin dies/);
  assertMatch(output.stdout[0], /from a snapshot of .* at version 11$/);
  assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)), { backend_url: url });
  assert((Deno.statSync(launcher).mode! & 0o111) !== 0, "launcher is executable");
  // Only the backup is left beside it: the snapshot's temporary copy is gone.
  assertEquals([...Deno.readDirSync(`${dir}/../backups`)].map((e) => e.name), ["node"]);

  const backend = openBackend(url);
  assertEquals(backend.state().version, 11);
  backend.close();
  restoreBackup(openReader(url), `${dir}/../restored.sqlite3`);
  const fresh = loadFixture("fresh-start");
  assertEquals(dumpDatabase(`${dir}/../restored.sqlite3`), dumpDatabase(fresh.database));

  // lightningd restarts with the plugin as configured: through the launcher init wrote.
  const restart = loadFixture("restart");
  const node = FakeLightningd.spawn({
    lightningDir: dir,
    command: [launcher],
    chunking: { kind: "sizes", sizes: restart.chunks },
  });
  assertEquals(await node.replay(restart.raw), "committed", node.aborted);
  assertEquals((await node.close()).code, 0, await node.stderr());
  restoreBackup(openReader(url), `${dir}/../restored-after.sqlite3`);
  assertEquals(dumpDatabase(`${dir}/../restored-after.sqlite3`), dumpDatabase(restart.database));
  removeNodeDir(dir);
});

Deno.test("init on a node with no database yet creates an empty backup at version 0", async () => {
  const dir = makeNodeDir();
  const url = `file://${dir}/../backup`;
  const output = new BufferedOutput();
  assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.stderr.join("\n"));
  assertMatch(output.stdout[0], /Created the empty backup .* at version 0/);
  assertEquals(output.stdout.at(-1), `important-plugin=${dir}/cln-backup-plugin`);
  const backend = openBackend(url);
  assertEquals(backend.state(), {
    version: 0,
    rewindVersion: undefined,
    records: 0,
    bytes: 64,
    tail: undefined,
  });
  backend.close();
  removeNodeDir(dir);
});

Deno.test("init snapshots the database a wallet= line of lightningd's config names, and refuses a PostgreSQL one", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  // The database on another disk, named by the base dir's config; its replica is not ours.
  Deno.mkdirSync(`${base}/ssd`);
  Deno.renameSync(`${dir}/lightningd.sqlite3`, `${base}/ssd/node.sqlite3`);
  Deno.writeTextFileSync(
    `${base}/config`,
    `wallet=sqlite3://../ssd/node.sqlite3:${base}/replica.sqlite3\n`,
  );
  const url = `file://${base}/backups/node`;
  const output = new BufferedOutput();
  assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.stderr.join("\n"));
  assertEquals(
    output.stdout[0],
    `Created the backup "${base}/backups/node" from a snapshot of "${base}/ssd/node.sqlite3" ` +
      "at version 11",
  );
  restoreBackup(openReader(url), `${base}/restored.sqlite3`);
  assertEquals(
    dumpDatabase(`${base}/restored.sqlite3`),
    dumpDatabase(loadFixture("fresh-start").database),
  );
  removeNodeDir(dir);

  const other = makeNodeDir("fresh-start");
  Deno.writeTextFileSync(`${other}/config`, "wallet=postgres://cln:secret@localhost/cln\n");
  await refused(
    other,
    [`file://${other}/../backup`, "--lightning-dir", other],
    /^Cannot init backup: .*\/config sets wallet= to a postgres database: lightningd hands plugins the changes of a SQLite database only/,
  );
  assert(!exists(`${other}/../backup`));
  removeNodeDir(other);
});

Deno.test("init refuses a running lightningd: its RPC socket answers", async () => {
  const dir = makeNodeDir("fresh-start");
  const listener = Deno.listen({ transport: "unix", path: `${dir}/lightning-rpc` });
  try {
    await refused(
      dir,
      [`file://${dir}/../backup`, "--lightning-dir", dir],
      /^Cannot init backup: lightningd is running on ".*regtest" \(its RPC socket ".*lightning-rpc" accepts connections\): stop it first/,
    );
  } finally {
    listener.close();
  }
  removeNodeDir(dir);
});

Deno.test("init accepts a socket file a killed lightningd left behind", async () => {
  const dir = makeNodeDir("fresh-start");
  const socket = `${dir}/lightning-rpc`;
  const holder = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `Deno.listen({ transport: "unix", path: ${JSON.stringify(socket)} }); ` +
      `console.log("listening"); setInterval(() => {}, 1000);`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  // Wait for it to listen: its first output line.
  const lines = holder.stdout.getReader();
  await lines.read();
  await lines.cancel();
  holder.kill("SIGKILL");
  await holder.status;
  assert(exists(socket), "the killed process left its socket file");
  const output = new BufferedOutput();
  assertEquals(await init([`file://${dir}/../backup`, "--lightning-dir", dir], output), 0);
  removeNodeDir(dir);
});

Deno.test("init refuses a running lightningd named by the pid file in the base dir", async () => {
  const dir = makeNodeDir("fresh-start");
  // A process whose name is "lightningd", as /proc/<pid>/comm shows it.
  const fake = `${dir}/../lightningd`;
  Deno.copyFileSync("/bin/sleep", fake);
  Deno.chmodSync(fake, 0o755);
  const process = new Deno.Command(fake, { args: ["30"] }).spawn();
  // Until it has exec'd, the child still carries its parent's name.
  const comm = () => Deno.readTextFileSync(`/proc/${process.pid}/comm`).trim();
  for (let i = 0; i < 500 && comm() !== "lightningd"; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  Deno.writeTextFileSync(`${dir}/../lightningd-regtest.pid`, `${process.pid}\n`);
  try {
    await refused(
      dir,
      [`file://${dir}/../backup`, "--lightning-dir", dir],
      /^Cannot init backup: lightningd is running on .* names process \d+, a lightningd\): stop it first/,
    );
  } finally {
    process.kill("SIGKILL");
    await process.status;
  }
  // Once it is gone, the pid file is stale and init goes ahead.
  const output = new BufferedOutput();
  assertEquals(await init([`file://${dir}/../backup`, "--lightning-dir", dir], output), 0);
  removeNodeDir(dir);
});

Deno.test("init refuses the base lightning dir and names the network dir to use", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  Deno.mkdirSync(`${base}/bitcoin`);
  await refused(
    base,
    [`file://${base}/backup`, "--lightning-dir", base],
    new RegExp(
      `^Cannot init backup: ".*" looks like the base lightning directory \\(it holds the ` +
        `network directories bitcoin, regtest\\), not the network directory lightningd runs ` +
        `plugins in: use --lightning-dir "${base}/regtest"$`,
    ),
  );
  const configOnly = Deno.makeTempDirSync();
  Deno.writeTextFileSync(`${configOnly}/config`, "network=bitcoin\n");
  await refused(
    configOnly,
    [`file://${configOnly}/backup`, "--lightning-dir", configOnly],
    /holds a "config" file but no hsm_secret\), .*: use --lightning-dir ".*\/bitcoin"$/,
  );
  Deno.removeSync(configOnly, { recursive: true });
  removeNodeDir(dir);
});

Deno.test("init refuses an existing backup and an existing backup.lock", async () => {
  const dir = makeNodeDir("fresh-start");
  const taken = Deno.realPathSync(`${dir}/..`) + "/taken";
  Deno.mkdirSync(taken);
  await refused(
    dir,
    [`file://${taken}`, "--lightning-dir", dir],
    /^Cannot init backup: ".*\/taken" already exists and is not a cln-backup backup: choose a new path, or remove it/,
  );
  assertEquals([...Deno.readDirSync(taken)], []);

  Deno.writeTextFileSync(`${dir}/backup.lock`, '{"backend_url": "file:///old/backup.dbak"}');
  await refused(
    dir,
    [`file://${dir}/../new`, "--lightning-dir", dir],
    /^Cannot init backup: ".*backup.lock" already exists \(it points to file:\/\/\/old\/backup.dbak\): this node has a backup already: to start over, move backup.lock aside first$/,
  );
  // The Python plugin's v1 file, known by its header whatever its name.
  const v1 = `${Deno.realPathSync(`${dir}/..`)}/file.bkp`;
  Deno.copyFileSync(PRE_4090_BACKUP, v1);
  Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: `file://${v1}` }));
  await refused(
    dir,
    [`file://${dir}/../new`, "--lightning-dir", dir],
    /^Cannot init backup: ".*backup.lock" already exists \(it points to file:\/\/.*\/file.bkp\): this node has a backup already: it is the Python plugin's v1 backup: convert it with "cln-backup upgrade --lightning-dir '.*\/regtest'" instead \(it writes the launcher too\); to start over, move backup.lock aside first$/,
  );
  assert(!exists(`${dir}/../new`));
  removeNodeDir(dir);
});

Deno.test("init refuses a database that is not lightningd's, leaving nothing behind", async () => {
  const dir = makeNodeDir();
  const db = new DatabaseSync(`${dir}/lightningd.sqlite3`);
  db.exec("CREATE TABLE t (x)");
  db.close();
  await refused(
    dir,
    [`file://${dir}/../backups/node`, "--lightning-dir", dir],
    /^Cannot init backup: ".*lightningd.sqlite3" holds no vars.data_version, so it is not a lightningd database/,
  );
  assertEquals([...Deno.readDirSync(`${dir}/../backups`)], []);
  removeNodeDir(dir);
});

Deno.test("init of a database lightningd left in the middle of a write says how to end that write", async () => {
  const dir = makeNodeDir("fresh-start");
  leaveHotJournal(dir);
  await refused(
    dir,
    [`file://${dir}/../backups/node`, "--lightning-dir", dir],
    /^Cannot init backup: ".*\/lightningd.sqlite3" has a hot journal \(".*\/lightningd.sqlite3-journal"\): lightningd stopped in the middle of a write, which only a writer may roll back: start lightningd and stop it \("lightning-cli stop"\), then run this again$/,
  );
  assertEquals([...Deno.readDirSync(`${dir}/..`)].map((e) => e.name).sort(), [
    "backups",
    "regtest",
  ]);
  assertEquals([...Deno.readDirSync(`${dir}/../backups`)], []);
  removeNodeDir(dir);
});

Deno.test("init of a damaged database names it and says what to do", async () => {
  const dir = makeNodeDir("fresh-start");
  damageDatabase(dir);
  await refused(
    dir,
    [`file://${dir}/../backups/node`, "--lightning-dir", dir],
    /^Cannot init backup: ".*\/regtest\/lightningd.sqlite3" is damaged \(database disk image is malformed\), and lightningd cannot run on it either: check the disk it is on, then restore the database from the node's backup \("cln-backup restore"\)$/,
  );
  assertEquals([...Deno.readDirSync(`${dir}/../backups`)], []);
  removeNodeDir(dir);
});

Deno.test("init rejects bad command lines, and a socket URL with no server at once", async () => {
  const dir = makeNodeDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  let output = new BufferedOutput();
  assertEquals(await init([], output), 2);
  assertMatch(
    output.stderr[0],
    /^Usage error: "init" takes <url> or <lightning-dir> <url>, got 0 argument\(s\): see/,
  );
  output = new BufferedOutput();
  assertEquals(await init(["file:///x", "--lightning-dri", dir], output), 2);
  assertMatch(output.stderr[0], /^Usage error: Unknown option '--lightning-dri'/);
  await refused(
    dir,
    [`socket:127.0.0.1:${port}`, "--lightning-dir", dir],
    new RegExp(
      `^Cannot init backup: connecting to 127.0.0.1:${port}: .*refused.*: check that the server runs`,
    ),
  );
  await refused(dir, ["fle:///x", "--lightning-dir", dir], /^Cannot use backup URL "fle:\/\/\/x"/);
  output = new BufferedOutput();
  assertEquals(await init(["backup", "--lightning-dir", dir], output), 2);
  assertMatch(
    output.stderr[0],
    /^Usage error: "init" got no <url> .*: see "cln-backup init --help"$/,
  );
  output = new BufferedOutput();
  assertEquals(await init(["--help"], output), 0);
  assertMatch(output.text, /^Usage: cln-backup init --lightning-dir DIR <url>\n/);
  removeNodeDir(dir);
});

Deno.test("initTarget tells the forms apart by which argument is a URL", async () => {
  assertEquals(initTarget(["file:///b"], undefined), { url: "file:///b", dir: undefined });
  assertEquals(initTarget(["file:///b"], "n"), { url: "file:///b", dir: "n" });
  assertEquals(initTarget(["n", "file:///b"], undefined), { url: "file:///b", dir: "n" });
  assertEquals(initTarget(["socket:h:1", "n"], undefined), { url: "socket:h:1", dir: "n" });
  const forms = `use "init --lightning-dir <dir> <url>" or "init <lightning-dir> <url>"`;
  for (
    const [positionals, option, wrong] of [
      [["file:///a", "file:///b"], undefined, 'two URLs, "file:///a" and "file:///b"'],
      [["a", "b"], undefined, 'two directories, "a" and "b"'],
      [["a", "file:///b"], "c", 'two lightning dirs, "a" and --lightning-dir "c"'],
      [["a"], undefined, "no <url> (an argument such as file:///abs/path)"],
    ] as const
  ) {
    const error = await assertRejects(() => initTarget([...positionals], option));
    assert(error instanceof UsageError);
    assertEquals(error.message, `"init" got ${wrong}: ${forms}`);
  }
});

Deno.test("init with <url> alone creates an empty backup and touches no lightning dir", async () => {
  const dir = makeNodeDir("fresh-start");
  const before = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  const url = `file://${Deno.realPathSync(`${dir}/..`)}/storage`;
  const output = new BufferedOutput();
  assertEquals(await init([url], output), 0, output.stderr.join("\n"));
  assertMatch(
    output.stdout[0],
    /^Created the empty backup ".*\/storage" at version 0, and no backup.lock/,
  );
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), before);
  const backend = openBackend(url);
  assertEquals(backend.state().version, 0);
  backend.close();
  removeNodeDir(dir);
});

Deno.test("init --mirror --async makes every copy from one snapshot, or none of them", async () => {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    const urls = ["primary", "mirror", "copy"].map((name) => `file://${base}/${name}`);
    const args = ["--lightning-dir", dir, urls[0], "--mirror", urls[1], "--async", urls[2]];
    await refused(dir, [...args, "--encrypt"], /--encrypt takes one destination/);
    for (
      const [wrong, pattern] of [
        [[...args, "--async", urls[1]], /got "file:.*\/mirror" twice/],
        [[urls[0], "--mirror", urls[1]], /--mirror and --async go with the node's lightning dir/],
      ] as const
    ) {
      const usage = new BufferedOutput();
      assertEquals(await init([...wrong], usage), 2);
      assertMatch(usage.stderr[0], pattern);
    }
    // A copy that cannot be made: the primary and the copies made before it are removed.
    Deno.writeTextFileSync(`${base}/copy`, "in the way");
    await refused(dir, args, /"[^"]*\/copy" already exists/);
    assertEquals(exists(`${base}/primary`) || exists(`${base}/mirror`), false);
    Deno.removeSync(`${base}/copy`);
    const output = new BufferedOutput();
    assertEquals(await init(args, output), 0, output.transcript);
    const lock = JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`));
    // Each copy is tied to its own backup id, which the plugin checks before writing there.
    const idOf = (name: string) => formatBackupId(readChain(`${base}/${name}`).backupId);
    assertEquals(lock, {
      backend_url: urls[0],
      mirror_urls: [urls[1]],
      async_urls: [urls[2]],
      backup_ids: { [urls[1]]: idOf("mirror"), [urls[2]]: idOf("copy") },
    });
    const versions = urls.map((url) => openReader(url).describe().lastVersion);
    assertEquals(new Set(versions).size, 1);
    assert(versions[0] > 0);
    const launcher = Deno.readTextFileSync(`${dir}/cln-backup-plugin`);
    assertMatch(launcher, new RegExp(`--allow-write=${base}/primary,${base}/mirror,${base}/copy'`));
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init warns when the backup and every copy are on the database's filesystem, and only then", async () => {
  const cases: [
    string,
    (base: string) => string[],
    (base: string, dir: string) => RegExp | undefined,
  ][] = [
    // Here the temporary directory really is on the database's filesystem.
    ["beside the database", (base) => [`file://${base}/backups/node`], (base, dir) =>
      new RegExp(
        `^Warning: the backup "${base}/backups/node" is on the same filesystem as the ` +
          `node's database "${dir}/lightningd.sqlite3": one disk failure loses both: put the ` +
          `backup on another disk, or add a copy on another disk or a remote one .*` +
          `mirror <url> --lightning-dir '${dir}'"$`,
      )],
    ["in the lightning dir, with a mirror beside", (base) => [
      `file://${base}/regtest/backup`,
      "--mirror",
      `file://${base}/mirror`,
    ], (base) =>
      new RegExp(
        `^Warning: the backup "${base}/regtest/backup" and its copy "${base}/mirror" are on ` +
          `the same filesystem as the node's database .*: one disk failure loses them all`,
      )],
    ["on another disk", (base) => [`file://${base}/mnt/node`], () => undefined],
    ["beside, with a mirror on another disk", (base) => [
      `file://${base}/backups/node`,
      "--mirror",
      `file://${base}/mnt/node`,
    ], () => undefined],
    ["beside, with an async copy on another disk", (base) => [
      `file://${base}/backups/node`,
      "--async",
      `file://${base}/mnt/node`,
    ], () => undefined],
  ];
  for (const [what, urls, warning] of cases) {
    const dir = makeNodeDir("fresh-start");
    const base = Deno.realPathSync(`${dir}/..`);
    try {
      Deno.mkdirSync(`${base}/mnt`);
      const output = new BufferedOutput();
      const code = await init(
        ["--lightning-dir", dir, ...urls(base)],
        output,
        undefined,
        otherDiskAt(`${base}/mnt`),
      );
      assertSetUp(code, output, dir, warning(base, dir), what);
    } finally {
      removeNodeDir(dir);
    }
  }
  // Encrypted: mirror refuses to copy it, so the way out is a new encrypted backup elsewhere.
  const node = makeNodeDir("fresh-start");
  try {
    const passphrase = `${node}/../passphrase`;
    Deno.writeTextFileSync(passphrase, "correct horse battery staple\n", { mode: 0o600 });
    const output = new BufferedOutput();
    const args = [`file://${node}/../backup`, "--lightning-dir", node, "--encrypt"];
    assertEquals(await init([...args, "--passphrase-file", passphrase], output), 0);
    const warnings = setUpWarnings(output);
    assertEquals(warnings.length, 1, output.transcript);
    assertMatch(
      warnings[0],
      new RegExp(
        `one disk failure loses both: .*move backup\\.lock and backup\\.key aside and run ` +
          `"cln-backup init --lightning-dir '${node}' <url> --encrypt" \\(mirror makes no copy`,
      ),
    );
  } finally {
    removeNodeDir(node);
  }
  // No database yet: the lightning dir, where it will be, is the disk to outlive.
  const dir = makeNodeDir();
  try {
    const output = new BufferedOutput();
    assertEquals(await init([`file://${dir}/../backup`, "--lightning-dir", dir], output), 0);
    const warnings = setUpWarnings(output);
    assertEquals(warnings.length, 1, output.transcript);
    assertMatch(
      warnings[0],
      new RegExp(`same filesystem as "${dir}", where the node's database will be: `),
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init says in a Note when it cannot check the same disk, and sets up all the same", async () => {
  const dir = makeNodeDir("fresh-start");
  try {
    const output = new BufferedOutput();
    const untold = (path: string): number => {
      throw new Error(`cannot tell the filesystem of "${path}"`);
    };
    const code = await init(
      [`file://${dir}/../backup`, "--lightning-dir", dir],
      output,
      undefined,
      untold,
    );
    assertSetUp(
      code,
      output,
      dir,
      new RegExp(
        `^Note: cannot check that a destination outlives the disk of the node's database ` +
          `\\(cannot tell the filesystem of "${dir}/lightningd\\.sqlite3"\\): doctor checks it: `,
      ),
      "a filesystem that cannot be told",
    );
  } finally {
    removeNodeDir(dir);
  }
});

/** Commits one transaction on the node in `dir` through the launcher init wrote. */
async function oneTransaction(dir: string): Promise<void> {
  const node = FakeLightningd.spawn({ lightningDir: dir, command: [`${dir}/cln-backup-plugin`] });
  try {
    await node.getmanifest();
    assertEquals(await node.transaction(["DELETE FROM vars WHERE name = 'x'"]), "committed");
    assertEquals((await node.stop()).code, 0);
  } finally {
    await node.kill().catch(() => {});
  }
}

/** Where a node's backup goes, and the lightning dir of the new machine it is restored on. */
function newMachine(dir: string): { base: string; url: string; again: string } {
  const base = Deno.realPathSync(`${dir}/..`);
  return { base, url: `file://${base}/backups/node`, again: `${base}/new-machine/regtest` };
}

/** The node's database, restored from `reader` on the new machine `again`. */
function restoreOn(reader: BackupReader, again: string): void {
  Deno.mkdirSync(again, { recursive: true });
  restoreBackup(reader, again);
}

Deno.test("init --existing sets a restored node up again on the backup it was restored from", async () => {
  const dir = makeNodeDir("fresh-start");
  const { base, url, again } = newMachine(dir);
  try {
    assertEquals(await init([url, "--lightning-dir", dir], new BufferedOutput()), 0);
    await oneTransaction(dir);
    // The node's machine is lost; a new one gets its database back from the backup.
    restoreOn(openReader(url), again);
    await refused(
      again,
      [url, "--lightning-dir", again],
      /already exists, a backup of versions 11 to 12, .*; if ".*" was restored from it, run init again with --existing/,
    );
    const output = new BufferedOutput();
    assertEquals(
      await init([url, "--lightning-dir", again, "--existing"], output),
      0,
      output.transcript,
    );
    assertMatch(output.stdout[0], /^Took the backup file:.* as this node's: .* at version 12;/);
    assertEquals(JSON.parse(Deno.readTextFileSync(`${again}/backup.lock`)), { backend_url: url });
    assertEquals(output.stdout.at(-1), `important-plugin=${again}/cln-backup-plugin`);
    // The plugin goes on from there, through the launcher.
    await oneTransaction(again);
    const restored = `${base}/restored.sqlite3`;
    restoreBackup(openReader(url), restored);
    assertEquals(dumpDatabase(restored), dumpDatabase(`${again}/lightningd.sqlite3`));
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init --existing refuses a backup that does not restore to the node's database", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  const url = `file://${base}/backups/node`;
  const other = `${base}/other/regtest`;
  try {
    assertEquals(await init([url, "--lightning-dir", dir], new BufferedOutput()), 0);
    Deno.mkdirSync(other, { recursive: true });
    restoreBackup(openReader(url), other);
    const db = new DatabaseSync(`${other}/lightningd.sqlite3`);
    // A change the backup never saw, at the same version.
    db.exec("INSERT INTO vars (name, intval) VALUES ('not-backed-up', 1)");
    await refused(
      other,
      [url, "--lightning-dir", other, "--existing"],
      /is at the database's version 11 but does not restore to .*\(table vars holds more rows/,
    );
    db.exec("UPDATE vars SET intval = intval + 1 WHERE name = 'data_version'");
    db.close();
    await refused(
      other,
      [url, "--lightning-dir", other, "--existing"],
      /the backup file:.* is at version 11, but .* is at 12: it misses changes/,
    );
    const usage = new BufferedOutput();
    const withMirror = [url, "--lightning-dir", other, "--existing", "--mirror", `file:///m`];
    assertEquals(await init(withMirror, usage), 2);
    assertMatch(usage.stderr[0], /--existing takes a lightning dir and one URL/);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init --existing without a restored database gives the restore command to paste", async () => {
  const dir = makeNodeDir();
  try {
    Deno.writeFileSync(`${dir}/hsm_secret`, new Uint8Array(32), { mode: 0o400 });
    Deno.writeTextFileSync(
      `${dir}/backup-s3.credentials`,
      "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
      { mode: 0o600 },
    );
    const url = "s3://bucket/node1?endpoint=http://127.0.0.1:9&path-style=1";
    const output = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", dir, "--existing"], output), 1);
    // Quoted: unquoted, the shell would cut the URL at "&".
    assertMatch(
      output.stderr[0],
      /does not exist: restore it first \("cln-backup restore 's3:\/\/bucket\/node1\?endpoint=http:\/\/127\.0\.0\.1:9&path-style=1' '.*\/regtest'"\)$/,
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init --existing gives the restore command to a database a wallet= line keeps elsewhere", async () => {
  const dir = makeNodeDir();
  try {
    Deno.writeFileSync(`${dir}/hsm_secret`, new Uint8Array(32), { mode: 0o400 });
    const base = Deno.realPathSync(`${dir}/..`);
    Deno.writeTextFileSync(`${dir}/config`, `wallet=sqlite3://${base}/ssd/node.sqlite3\n`);
    const url = `file://${base}/backup`;
    const output = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", dir, "--existing"], output), 1);
    // Restore refuses the directory: the database goes where lightningd opens it.
    assertMatch(
      output.stderr[0],
      new RegExp(
        `does not exist: restore it first \\("cln-backup restore '${url}' '${base}/ssd/node\\.sqlite3'"\\)$`,
      ),
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init --existing refuses a database that differs after an integer past 2^53", async () => {
  const dir = makeNodeDir("fresh-start");
  const { url, again } = newMachine(dir);
  try {
    const db = new DatabaseSync(`${dir}/lightningd.sqlite3`);
    // A mainnet short_channel_id (900000x1x1), then a row the backup never saw changed.
    db.exec(
      "CREATE TABLE zchannels (id INTEGER PRIMARY KEY, scid INTEGER, msat INTEGER);" +
        "INSERT INTO zchannels VALUES (1, 989560084277002241, 5), (2, 2, 1000000)",
    );
    db.close();
    assertEquals(await init([url, "--lightning-dir", dir], new BufferedOutput()), 0);
    restoreOn(openReader(url), again);
    const output = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", again, "--existing"], output), 0);
    Deno.removeSync(`${again}/backup.lock`);
    const restored = new DatabaseSync(`${again}/lightningd.sqlite3`);
    restored.exec("UPDATE zchannels SET msat = 1 WHERE id = 2");
    restored.close();
    await refused(
      again,
      [url, "--lightning-dir", again, "--existing"],
      /does not restore to .*\(a row of table zchannels differs\)/,
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init --existing refuses a key file beside a plain backup (the plugin would not start)", async () => {
  const dir = makeNodeDir("fresh-start");
  const { url, again } = newMachine(dir);
  try {
    assertEquals(await init([url, "--lightning-dir", dir], new BufferedOutput()), 0);
    restoreOn(openReader(url), again);
    // An old encrypted backup's key file, copied with the rest of the old lightning dir.
    const stale = JSON.stringify({ cln_backup_data_key: "11".repeat(32) }) + "\n";
    Deno.writeTextFileSync(`${again}/backup.key`, stale, { mode: 0o600 });
    await refused(
      again,
      [url, "--lightning-dir", again, "--existing"],
      /backup\.key" holds a key, but the backup file:.* is not encrypted: .*move it aside/,
    );
    assertEquals(Deno.readTextFileSync(`${again}/backup.key`), stale);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init --existing on an encrypted backup keeps its own key file put back, refuses another's", async () => {
  const dir = makeNodeDir("fresh-start");
  const { base, url, again } = newMachine(dir);
  const passphrase = `${base}/passphrase`;
  Deno.writeTextFileSync(passphrase, "correct horse battery staple\n", { mode: 0o600 });
  const existing = [url, "--lightning-dir", again, "--existing", "--passphrase-file", passphrase];
  try {
    const args = [url, "--lightning-dir", dir, "--encrypt", "--passphrase-file", passphrase];
    assertEquals(await init(args, new BufferedOutput()), 0);
    const reader = openReader(url);
    await unlockReader(reader, { "passphrase-file": passphrase });
    restoreOn(reader, again);
    const other = JSON.stringify({ cln_backup_data_key: "11".repeat(32) }) + "\n";
    Deno.writeTextFileSync(`${again}/backup.key`, other, { mode: 0o600 });
    await refused(again, existing, /backup\.key" holds another backup's key: .*move it aside/);
    const own = Deno.readTextFileSync(`${dir}/backup.key`);
    Deno.writeTextFileSync(`${again}/backup.key`, own, { mode: 0o600 });
    const output = new BufferedOutput();
    assertEquals(await init(existing, output), 0, output.transcript);
    assertEquals(Deno.readTextFileSync(`${again}/backup.key`), own);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init --existing takes an age identity file, as restore does", async () => {
  const dir = makeNodeDir("fresh-start");
  const { base, url, again } = newMachine(dir);
  try {
    const identity = await newAgeIdentity();
    const identityFile = `${base}/identity`;
    Deno.writeTextFileSync(identityFile, `# created: now\n${identity}\n`, { mode: 0o600 });
    const args = [url, "--lightning-dir", dir, "--encrypt", "--recipient"];
    assertEquals(await init([...args, await ageRecipientOf(identity)], new BufferedOutput()), 0);
    const reader = openReader(url);
    await unlockReader(reader, { identity: identityFile });
    restoreOn(reader, again);
    const output = new BufferedOutput();
    const existing = [url, "--lightning-dir", again, "--existing", "--identity", identityFile];
    assertEquals(await init(existing, output), 0, output.transcript);
    assertEquals(
      Deno.readTextFileSync(`${again}/backup.key`),
      Deno.readTextFileSync(`${dir}/backup.key`),
    );
    // Without --existing it has no use: a usage error, not a silent no-op.
    const usage = new BufferedOutput();
    const plain = [`file://${base}/other`, "--lightning-dir", dir, "--identity", identityFile];
    assertEquals(await init(plain, usage), 2);
    assertMatch(usage.stderr[0], /--identity goes with --existing/);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("init of a plain backup refuses a key file in the lightning dir (the plugin would not start)", async () => {
  // An older encrypted set-up's key file, or an interrupted "init --encrypt"'s: init made the
  // plain backup, and lightningd then stopped at start on the plugin's refusal.
  const dir = makeNodeDir("fresh-start");
  try {
    const stale = JSON.stringify({ cln_backup_data_key: "11".repeat(32) }) + "\n";
    Deno.writeTextFileSync(`${dir}/backup.key`, stale, { mode: 0o600 });
    await refused(
      dir,
      [`file://${dir}/../backup`, "--lightning-dir", dir],
      /^Cannot init backup: ".*\/backup\.key" holds a key, but this init makes a plain backup: the plugin would refuse to start with it; init with --encrypt, or move the key file aside .*, then run this again$/,
    );
    assert(!exists(`${dir}/../backup`));
    assertEquals(Deno.readTextFileSync(`${dir}/backup.key`), stale);
  } finally {
    removeNodeDir(dir);
  }
});
