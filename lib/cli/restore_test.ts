import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { dumpDatabase } from "../../tests/support/dump.ts";
import {
  type Fixture,
  loadFixture,
  PRE_4090_BACKUP,
  RPC_OPTIONS,
  SCENARIOS,
} from "../../tests/support/fixtures.ts";
import { DatabaseSync } from "node:sqlite";
import { openBackend, openReader } from "../backends/open.ts";
import { existsSync } from "../fs/exists.ts";
import { writeLockFile } from "../backup/lock_file.ts";
import {
  aloneNote,
  lastBlockNote,
  oneAheadNote,
  restore,
  RestoreProgress,
  unnamedNote,
} from "./restore.ts";
import { upgrade } from "./upgrade.ts";
import { makeEncryptedBackup, PASSPHRASE } from "../../tests/support/encrypted.ts";
import { parentChildDatabase } from "../../tests/support/migration.ts";
import { writeKeyFile } from "../crypto/key_file.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { compactWithWriter } from "../compact/compact.ts";
import { BufferedOutput, makeBackup, recordedChanges } from "../../tests/support/cli_testing.ts";

const changes = recordedChanges(["fresh-start", "restart"]);

function dataVersion(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    assertEquals(db.prepare("PRAGMA integrity_check").get()?.integrity_check, "ok");
    return Number(db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get()?.intval);
  } finally {
    db.close();
  }
}

async function run(args: string[]): Promise<{ code: number; output: BufferedOutput }> {
  const output = new BufferedOutput();
  return { code: await restore(args, output), output };
}

/** A test that runs `body` in a fresh temporary directory, removed however the test ends. */
function inTempDir(body: (dir: string) => Promise<void>, prefix?: string): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix });
    try {
      await body(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

Deno.test(
  "restore to a file and to a directory gives the node's database",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    const expected = dumpDatabase(loadFixture("restart").database);

    const file = await run([url, `${dir}/node.sqlite3`]);
    assertEquals(file.code, 0, file.output.stderr.join("\n"));
    assertEquals(file.output.stdout, [
      `Restored "${dir}/node.sqlite3" at version 15: ${changes.length} change(s) applied from ` +
      `the first change; it passes SQLite's integrity check`,
      oneAheadNote(15),
      aloneNote(url),
    ]);
    assertEquals(dumpDatabase(`${dir}/node.sqlite3`), expected);

    Deno.mkdirSync(`${dir}/regtest`);
    const directory = await run([url, `${dir}/regtest`]);
    assertEquals(directory.code, 0, directory.output.stderr.join("\n"));
    assertMatch(
      directory.output.stdout[0],
      /^Restored ".*\/regtest\/lightningd.sqlite3" at version 15/,
    );
    assertEquals(dumpDatabase(`${dir}/regtest/lightningd.sqlite3`), expected);

    // A second restore refuses to overwrite either, and leaves them as they are.
    for (const target of [`${dir}/node.sqlite3`, `${dir}/regtest`]) {
      const again = await run([url, target]);
      assertEquals(again.code, 1);
      const path = target.endsWith("regtest") ? `${target}/lightningd.sqlite3` : target;
      assertEquals(again.output.stderr, [
        `Cannot restore backup: database already exists at "${path}": move it aside or choose ` +
        `another target`,
      ]);
      assertEquals(dumpDatabase(path), expected);
    }
    assertEquals([...Deno.readDirSync(`${dir}/regtest`)].map((e) => e.name), [
      "lightningd.sqlite3",
    ]);
  }),
);

Deno.test(
  "restore into a directory whose lightningd.sqlite3 is a directory refuses, naming it",
  inTempDir(async (dir) => {
    // The database went one level deeper, where lightningd never opens it.
    const url = await makeBackup(`${dir}/backup`, changes);
    Deno.mkdirSync(`${dir}/regtest/lightningd.sqlite3`, { recursive: true });
    const { code, output } = await run([url, `${dir}/regtest`]);
    assertEquals([code, output.stdout], [1, []]);
    assertEquals(output.stderr, [
      `Cannot restore backup: "${dir}/regtest/lightningd.sqlite3" is a directory, where the ` +
      `database goes: move it aside, or choose another target`,
    ]);
    assertEquals([...Deno.readDirSync(`${dir}/regtest/lightningd.sqlite3`)], []);
    // Named itself (a Docker bind mount of a missing file makes such a directory).
    const named = await run([url, `${dir}/regtest/lightningd.sqlite3/`]);
    assertEquals([named.code, named.output.stdout], [1, []]);
    assertEquals(named.output.stderr, output.stderr);
    assertEquals([...Deno.readDirSync(`${dir}/regtest/lightningd.sqlite3`)], []);
  }),
);

Deno.test(
  "restore refuses a journal or WAL the moved-aside database left at the target",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    // The node's database, killed mid-transaction: its rollback journal is hot.
    const node = `${dir}/node`;
    Deno.mkdirSync(node);
    Deno.copyFileSync(loadFixture("fresh-start").database, `${node}/lightningd.sqlite3`);
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { DatabaseSync } from "node:sqlite";
        const db = new DatabaseSync(${JSON.stringify(`${node}/lightningd.sqlite3`)});
        db.exec("PRAGMA cache_size = 2; BEGIN; CREATE TABLE junk (x)");
        for (let i = 0; i < 500; i++) db.exec("INSERT INTO junk VALUES (randomblob(1000))");
        Deno.exit(0);`,
      ],
    }).output();
    assertEquals(child.code, 0, new TextDecoder().decode(child.stderr));
    assert(Deno.statSync(`${node}/lightningd.sqlite3-journal`).size > 0);
    // The operator moves the database aside, as the README says, but not its journal.
    Deno.renameSync(`${node}/lightningd.sqlite3`, `${node}/lightningd.sqlite3.damaged`);
    const refused = await run([url, node]);
    assertEquals(refused.code, 1);
    assertEquals(refused.output.stderr, [
      `Cannot restore backup: "${node}/lightningd.sqlite3-journal" is left from the database ` +
      `that was at "${node}/lightningd.sqlite3", and SQLite would apply it to the restored ` +
      `one: move it aside with that database, then restore again`,
    ]);
    assertEquals([...Deno.readDirSync(node)].map((e) => e.name).sort(), [
      "lightningd.sqlite3-journal",
      "lightningd.sqlite3.damaged",
    ]);
    Deno.renameSync(`${node}/lightningd.sqlite3-journal`, `${node}/old-journal`);
    Deno.writeFileSync(`${node}/lightningd.sqlite3-wal`, new Uint8Array(32));
    const wal = await run([url, node]);
    assertEquals(wal.code, 1);
    assertMatch(wal.output.stderr[0], /"[^"]*lightningd\.sqlite3-wal" is left from the database/);
    Deno.removeSync(`${node}/lightningd.sqlite3-wal`);
    const restored = await run([url, node]);
    assertEquals(restored.code, 0, restored.output.stderr.join("\n"));
    assertEquals(dataVersion(`${node}/lightningd.sqlite3`), 15);
  }),
);

Deno.test(
  "restore --to-version N gives the database at data_version N",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    for (const n of [1, 5, 11, 13]) {
      const { code, output } = await run([
        url,
        `${dir}/at-${n}.sqlite3`,
        "--to-version",
        String(n),
      ]);
      assertEquals(code, 0, output.stderr.join("\n"));
      assertEquals(output.stdout.length, 1, "no note for a chosen version");
      assertMatch(output.stdout[0], new RegExp(`at version ${n}: `));
      assertEquals(dataVersion(`${dir}/at-${n}.sqlite3`), n);
    }
    // Version 11 is where the fresh-start run ended.
    assertEquals(
      dumpDatabase(`${dir}/at-11.sqlite3`),
      dumpDatabase(loadFixture("fresh-start").database),
    );

    const beyond = await run([url, `${dir}/beyond.sqlite3`, "--to-version", "16"]);
    assertEquals(beyond.code, 1);
    // This backup has no snapshot: it starts at its first change (as a Python plugin's .dbak).
    assertEquals(beyond.output.stderr, [
      `Cannot restore backup to version 16: it holds versions up to 15 (from its first ` +
      `change): choose a version up to 15, or leave out --to-version to restore the newest`,
    ]);
    const bad = await run([url, `${dir}/bad.sqlite3`, "--to-version", "x1"]);
    assertEquals(bad.code, 2);
    assertMatch(bad.output.stderr[0], /^Usage error: --to-version takes a version number/);
  }),
);

Deno.test(
  "restore of a backup with a snapshot, before and after it",
  inTempDir(async (dir) => {
    const url = await makeBackup(
      `${dir}/backup`,
      recordedChanges(["restart"]),
      { version: 11, path: loadFixture("fresh-start").database },
    );
    const latest = await run([url, `${dir}/latest.sqlite3`]);
    assertEquals(latest.output.stdout, [
      `Restored "${dir}/latest.sqlite3" at version 15: 4 change(s) applied on top of the ` +
      `snapshot at version 11; it passes SQLite's integrity check`,
      oneAheadNote(15),
      aloneNote(url),
    ]);
    assertEquals(
      dumpDatabase(`${dir}/latest.sqlite3`),
      dumpDatabase(loadFixture("restart").database),
    );
    const before = await run([url, `${dir}/before.sqlite3`, "--to-version", "10"]);
    assertEquals(before.code, 1);
    assertMatch(before.output.stderr[0], /^Cannot restore backup/);
    assert(![...Deno.readDirSync(dir)].some((e) => e.name.startsWith("before")));
    const after = await run([url, `${dir}/after.sqlite3`, "--to-version", "16"]);
    assertEquals(after.output.stderr, [
      `Cannot restore backup to version 16: it holds versions up to 15 (from its snapshot at ` +
      `version 11): choose a version up to 15, or leave out --to-version to restore the newest`,
    ]);
    assert(![...Deno.readDirSync(dir)].some((e) => e.name.startsWith("after")));
  }),
);

Deno.test(
  "restore --to-version with --also takes the copy that holds the version, newest or not",
  inTempDir(async (dir) => {
    // A compacted copy (from its snapshot at 11 on), a whole one, and a whole one behind.
    const compacted = await makeBackup(
      `${dir}/compacted`,
      recordedChanges(["restart"]),
      { version: 11, path: loadFixture("fresh-start").database },
    );
    const whole = await makeBackup(`${dir}/whole`, changes);
    const behind = await makeBackup(`${dir}/behind`, changes.slice(0, -2));
    for (const other of [whole, behind]) {
      const target = `${dir}/at-5-${other === whole ? "whole" : "behind"}.sqlite3`;
      const { code, output } = await run([compacted, target, "--to-version", "5", "--also", other]);
      assertEquals(code, 0, output.stderr.join("\n"));
      assertMatch(output.stdout[1], new RegExp(`^Restored ".*" at version 5: .*, from ${other}$`));
      assertEquals(dataVersion(target), 5);
    }
  }),
);

Deno.test(
  "restore of the Python plugin's pre-4090 backup repairs its statements",
  inTempDir(async (dir) => {
    const { code, output } = await run([`file://${PRE_4090_BACKUP}`, dir]);
    assertEquals(code, 0, output.stderr.join("\n"));
    assertEquals(output.stdout, [
      `Restored "${dir}/lightningd.sqlite3" at version 46: 46 change(s) applied from the first ` +
      `change; it passes SQLite's integrity check`,
      oneAheadNote(46),
      // A real node's backup (regtest, recorded by the Python plugin's tests): blocks to 118.
      lastBlockNote(118),
      aloneNote(`file://${PRE_4090_BACKUP}`),
    ]);
    assertEquals(dataVersion(`${dir}/lightningd.sqlite3`), 46);
  }),
);

Deno.test(
  "restore from the directory that holds a v1 file (the Python README's form) names the file",
  inTempDir(async (dir) => {
    Deno.mkdirSync(`${dir}/location`);
    Deno.copyFileSync(PRE_4090_BACKUP, `${dir}/location/file.bkp`);
    Deno.writeTextFileSync(`${dir}/location/notes.txt`, "not a backup");
    const { code, output } = await run([`file://${dir}/location`, `${dir}/lightningd.sqlite3`]);
    assertEquals(code, 1);
    assertEquals(output.stderr, [
      `Cannot open backup: "${dir}/location" is a directory, not a backup; it holds ` +
      `"file.bkp" (the Python plugin's v1 backup): name the backup itself, ` +
      `file://${dir}/location/file.bkp`,
    ]);
    const named = await run([`file://${dir}/location/file.bkp`, `${dir}/lightningd.sqlite3`]);
    assertEquals(named.code, 0, named.output.stderr.join("\n"));
    // After "upgrade", the converted backup beside it comes first.
    await makeBackup(`${dir}/location/file.clnb`, changes);
    const both = await run([`file://${dir}/location`, `${dir}/other.sqlite3`]);
    assertEquals(both.output.stderr, [
      `Cannot open backup: "${dir}/location" is a directory, not a backup; it holds ` +
      `"file.clnb" (a cln-backup backup), "file.bkp" (the Python plugin's v1 backup): name the ` +
      `backup itself, file://${dir}/location/file.clnb`,
    ]);
  }),
);

Deno.test(
  "restore names a missing backup or target directory and what to do",
  inTempDir(async (dir) => {
    const missing = await run(["file:///nonexistent/backup", `${dir}/x.sqlite3`]);
    assertEquals(missing.code, 1);
    assertEquals(missing.output.stderr, [
      `Cannot open backup: nothing at "/nonexistent/backup": check the URL`,
    ]);
    const noDir = await run([`file://${PRE_4090_BACKUP}`, `${dir}/no/x.sqlite3`]);
    assertEquals(noDir.code, 1);
    assertEquals(noDir.output.stderr, [
      `Cannot restore backup: the directory "${dir}/no" does not exist: create it, or choose ` +
      `another target`,
    ]);
  }),
);

Deno.test(
  "restore into a node's dir refuses when its backup.lock names copies not given",
  inTempDir(async (dir) => {
    // The primary failed under mirror_failure "degrade" at 11; the mirror went on to 15.
    const primary = await makeBackup(`${dir}/primary`, recordedChanges(["fresh-start"]));
    const mirror = await makeBackup(`${dir}/mirror`, changes);
    const copy = await makeBackup(`${dir}/copy`, changes);
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    writeLockFile(node, { backend_url: primary, mirror_urls: [mirror], async_urls: [copy] });
    const alone = await run([primary, node]);
    assertEquals(alone.code, 1);
    assertEquals(alone.output.stderr, [
      `Cannot restore backup: "${node}/backup.lock" names other copies of this backup, ` +
      `which may be newer: ${mirror}, ${copy}: name each with --also, so that restore ` +
      `takes the newest (--also '${mirror}' --also '${copy}')`,
    ]);
    assertEquals([...Deno.readDirSync(node)].map((e) => e.name), ["backup.lock"]);
    const all = await run([primary, node, "--also", mirror, "--also", copy]);
    assertEquals(all.code, 0, all.output.stderr.join("\n"));
    assertEquals(dataVersion(`${node}/lightningd.sqlite3`), 15);
  }),
);

Deno.test(
  "restore into a node's dir from a backup its backup.lock does not name says the named ones may be newer",
  inTempDir(async (dir) => {
    // An async copy removed from async_urls when it failed (as the plugin says to), kept on
    // its disk at 11, while the node's backup went on to 15.
    const old = await makeBackup(`${dir}/old-copy`, recordedChanges(["fresh-start"]));
    const primary = await makeBackup(`${dir}/primary`, changes);
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    writeLockFile(node, { backend_url: primary });
    const restored = await run([old, node]);
    assertEquals(restored.code, 0, restored.output.stderr.join("\n"));
    assertEquals(dataVersion(`${node}/lightningd.sqlite3`), 11);
    assertEquals(restored.output.stdout.at(-1), unnamedNote(old, `${node}/backup.lock`, [primary]));
    assertMatch(
      restored.output.stdout.at(-1)!,
      /^Note: restored from .*, which .*backup\.lock" does not name: it names .*primary, which may be a newer copy of this node's backup: restore naming each with --also/,
    );
  }),
);

Deno.test(
  "restore with --also of copies backup.lock does not name says the named ones may be newer",
  inTempDir(async (dir) => {
    // Two copies dropped from backup.lock, kept on their disks at 11; the node's backup at 15.
    const old = await makeBackup(`${dir}/old-copy`, recordedChanges(["fresh-start"]));
    const older = await makeBackup(`${dir}/older-copy`, recordedChanges(["fresh-start"]));
    const primary = await makeBackup(`${dir}/primary`, changes);
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    writeLockFile(node, { backend_url: primary });
    const restored = await run([old, node, "--also", older]);
    assertEquals(restored.code, 0, restored.output.stderr.join("\n"));
    assertEquals(dataVersion(`${node}/lightningd.sqlite3`), 11);
    assertEquals(restored.output.stdout.at(-1), unnamedNote(old, `${node}/backup.lock`, [primary]));
    // Naming the one backup.lock names too restores the newest, with no such note.
    Deno.removeSync(`${node}/lightningd.sqlite3`);
    const all = await run([old, node, "--also", primary]);
    assertEquals(all.code, 0, all.output.stderr.join("\n"));
    assertEquals(dataVersion(`${node}/lightningd.sqlite3`), 15);
    assert(
      !all.output.stdout.some((line) => line.includes("does not name")),
      all.output.stdout.join("\n"),
    );
  }),
);

Deno.test(
  "restore into a node's dir knows backup.lock's copies however their URLs are spelled",
  inTempDir(async (dir) => {
    const primary = await makeBackup(`${dir}/primary`, recordedChanges(["fresh-start"]));
    const mirror = await makeBackup(`${dir}/mirror`, changes);
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    writeLockFile(node, { backend_url: primary, mirror_urls: [mirror] });
    // The primary with a trailing slash is still the backup backup.lock names with others.
    const alone = await run([`${primary}/`, node]);
    assertEquals(alone.code, 1);
    assertMatch(alone.output.stderr.join("\n"), /names other copies of this backup/);
    assertEquals([...Deno.readDirSync(node)].map((e) => e.name), ["backup.lock"]);
    // The mirror given as file://localhost/…/ is the one backup.lock names.
    const also = `file://localhost${dir}/mirror/`;
    const all = await run([primary, node, "--also", also]);
    assertEquals(all.code, 0, all.output.stderr.join("\n"));
    assertEquals(dataVersion(`${node}/lightningd.sqlite3`), 15);
  }),
);

Deno.test(
  "restore refuses a target inside the file backup it reads",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    const before = [...Deno.readDirSync(`${dir}/backup`)].map(({ name }) => name).sort();
    Deno.mkdirSync(`${dir}/backup/sub`);
    for (const target of [`${dir}/backup`, `${dir}/backup/x.sqlite3`, `${dir}/backup/sub`]) {
      const refused = await run([url, target]);
      assertEquals(refused.code, 1);
      assertEquals(refused.output.stderr.length, 1);
      assertMatch(
        refused.output.stderr[0],
        /^Cannot restore backup: ".*" is inside the backup ".*\/backup": restore into the node's /,
      );
    }
    Deno.removeSync(`${dir}/backup/sub`);
    assertEquals([...Deno.readDirSync(`${dir}/backup`)].map(({ name }) => name).sort(), before);
    assertEquals((await run([url, `${dir}/restored.sqlite3`])).code, 0);
  }),
);

Deno.test(
  "restore refuses a plain backup for a node whose backup is encrypted (its backup.key)",
  inTempDir(async (dir) => {
    // A copy from before upgrade --encrypt, kept by the storage's host: an old state.
    const url = await makeBackup(`${dir}/backup`, changes);
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    Deno.writeTextFileSync(`${node}/backup.key`, "{}");
    const refused = await run([url, node]);
    assertEquals(refused.code, 1);
    assertEquals(refused.output.stderr, [
      `Cannot unlock backup: "${url}" is not encrypted, but the node restored into has an ` +
      `encrypted backup ("${node}/backup.key" holds its key): whoever can write the storage ` +
      `could have put a plain one there (a copy from before "upgrade --encrypt" holds an old ` +
      `state); restore from the node's encrypted backup, or, if this plain one is meant, into ` +
      `another directory`,
    ]);
    assertEquals([...Deno.readDirSync(node)].map((e) => e.name), ["backup.key"]);
    // Nor as one of several copies (an encrypted backup has none).
    const copy = await makeBackup(`${dir}/copy`, changes);
    const also = await run([url, node, "--also", copy]);
    assertEquals([also.code, also.output.stderr], [1, refused.output.stderr]);
    assertEquals([...Deno.readDirSync(node)].map((e) => e.name), ["backup.key"]);
    assertEquals((await run([url, `${dir}/elsewhere.sqlite3`])).code, 0);
  }),
);

Deno.test(
  "restore progress: a bar by version once the restore runs long",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    const lines: string[] = [];
    const progress = new RestoreProgress(openReader(url), undefined, (t) => lines.push(t), 0);
    progress.update(8);
    progress.done();
    assertEquals(lines, ["restoring [###############---------------] 50% version 8 of 15", ""]);

    const quiet: string[] = [];
    const slow = new RestoreProgress(openReader(url), 10, (t) => quiet.push(t));
    slow.update(8);
    slow.done();
    assertEquals(quiet, []);
  }),
);

Deno.test(
  "restore says what a dangling symlink target, a version before the backup and %00 are",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes.slice(0, 6));
    Deno.symlinkSync(`${dir}/gone/lightningd.sqlite3`, `${dir}/link.sqlite3`);
    const dangling = await run([url, `${dir}/link.sqlite3`]);
    assertEquals(dangling.code, 1);
    assertEquals(dangling.output.stderr, [
      `Cannot restore backup: "${dir}/link.sqlite3" is a symbolic link to ` +
      `"${dir}/gone/lightningd.sqlite3", which does not exist: remove the link, or restore to ` +
      `"${dir}/gone/lightningd.sqlite3" itself`,
    ]);

    const before = await run([url, `${dir}/zero.sqlite3`, "--to-version", "0"]);
    assertEquals(before.code, 1);
    assertEquals(before.output.stderr, [
      "Cannot restore backup to version 0: it holds versions 1 to 4: choose --to-version from 1 " +
      "to 4",
    ]);

    const nul = await run([`${url}%00`, `${dir}/nul.sqlite3`]);
    assertEquals(nul.code, 1);
    assertEquals(nul.output.stderr, [
      `Cannot use backup URL "${url}%00": its path holds a NUL byte (%00), which no file name ` +
      `can hold`,
    ]);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["backup", "link.sqlite3"]);
  }),
);

Deno.test(
  "restore says where it stopped when the backup ends in bytes that fail their checks",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    const log = `${dir}/backup/log-${"1".padStart(20, "0")}.clnb`;
    const end = Deno.statSync(log).size;
    Deno.writeFileSync(log, new Uint8Array(10).fill(9), { append: true });
    const { code, output } = await run([url, `${dir}/restored.sqlite3`]);
    assertEquals(code, 0, output.stderr.join("\n"));
    assertEquals(dataVersion(`${dir}/restored.sqlite3`), 15);
    assertEquals(output.stdout.length, 4);
    assertMatch(output.stdout[0], /^Restored ".*" at version 15: /);
    assertEquals(
      output.stdout[1],
      `note: stopped at version 15: the 10 bytes after it, at offset ${end} of "${log}", fail ` +
        `their checks: a change torn by a crash (never acknowledged, then version 15 is the ` +
        `node's) or a damaged change 16; if the node's database is at version 16 or later, the ` +
        `backup is damaged`,
    );
  }),
);

Deno.test(
  "restore names the last block the database had processed, when it has any",
  inTempDir(async (dir) => {
    const block = (height: number, version: number) => ({
      version,
      statements: [
        `INSERT INTO blocks (height, hash, prev_hash) VALUES (${height}, x'01', x'02')`,
        `UPDATE vars SET intval=${height} WHERE name='last_processed_block';`,
        `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${
          version - 1
        }`,
      ],
    });
    const url = await makeBackup(`${dir}/backup`, [
      ...changes,
      block(871_202, 16),
      block(871_203, 17),
    ]);
    const newest = await run([url, `${dir}/node.sqlite3`]);
    assertEquals(newest.code, 0, newest.output.stderr.join("\n"));
    assertEquals(newest.output.stdout.slice(1, 3), [oneAheadNote(17), lastBlockNote(871_203)]);
    assertMatch(
      lastBlockNote(871_203),
      /^Note: the restored database had processed blocks up to 871203;/,
    );
    // A point in time is not the node's last state: no note to weigh it against.
    const earlier = await run([url, `${dir}/earlier.sqlite3`, "--to-version", "16"]);
    assertEquals(earlier.code, 0, earlier.output.stderr.join("\n"));
    assert(!earlier.output.stdout.some((line) => line.includes("processed blocks")));
  }),
);

Deno.test(
  "restore --also prints the notes a restore of one copy prints",
  inTempDir(async (dir) => {
    const mirror = await makeBackup(`${dir}/mirror`, changes);
    const copy = await makeBackup(`${dir}/copy`, changes.slice(0, -1));
    const both = await run([mirror, `${dir}/node.sqlite3`, "--also", copy]);
    assertEquals(both.code, 0, both.output.stderr.join("\n"));
    assertEquals(both.output.stdout.slice(1), [
      `The other copies: ${copy} at 14`,
      oneAheadNote(15),
    ]);
  }),
);

Deno.test(
  "restore --also refuses a copy of another node's backup, newer or not, and writes nothing",
  inTempDir(async (dir) => {
    // This node (fresh-start, restart: 1 to 15), and another node's backup (rpc-options: 1 to
    // 222) passed by mistake: newer, so restore would take it.
    const ours = await makeBackup(`${dir}/ours`, changes);
    const theirs = await makeBackup(`${dir}/theirs`, recordedChanges([RPC_OPTIONS]));
    const ids: Record<string, string> = {
      [ours]: "02057cd3f369f4abc6c2a024af55a4d9143d9d0a3c883aae1b0a3649070f58f258",
      [theirs]: "030a3db207f79cf051890bd20106de61c459fecb633a6a1013bb0443c471527e4f",
    };
    for (const args of [[ours, "--also", theirs], [theirs, "--also", ours]]) {
      const target = `${dir}/node`;
      Deno.mkdirSync(target);
      const { code, output } = await run([args[0], target, ...args.slice(1)]);
      assertEquals([code, output.stdout], [1, []]);
      assertEquals(output.stderr, [
        `Cannot restore backup: ${args[0]} and ${args[2]} are backups of different nodes ` +
        `(node ids ${ids[args[0]]} and ${ids[args[2]]}): restore from this node's backup ` +
        `alone, without --also`,
      ]);
      assertEquals([...Deno.readDirSync(target)], []);
      Deno.removeSync(target);
    }
  }),
);

/** A copy of a recorded run's database, in WAL mode when `wal`, as init would snapshot it. */
function databaseCopy(dir: string, name: Fixture["name"], wal = false): string {
  const path = `${dir}/${name}.sqlite3`;
  Deno.copyFileSync(loadFixture(name).database, path);
  if (wal) {
    const db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL");
    db.close();
  }
  return path;
}

Deno.test(
  "restore --also tells another node's backup by its snapshot, in WAL mode too",
  inTempDir(async (dir) => {
    const ours = await makeBackup(`${dir}/ours`, changes);
    // Another node's backup as init makes one: a snapshot of its database (in WAL mode).
    const database = databaseCopy(dir, RPC_OPTIONS, true);
    const theirs = await makeBackup(`${dir}/theirs`, [], { version: 222, path: database });
    const target = `${dir}/node`;
    Deno.mkdirSync(target);
    const { code, output } = await run([ours, target, "--also", theirs]);
    assertEquals([code, output.stdout], [1, []]);
    assertMatch(
      output.stderr.join("\n"),
      /^Cannot restore backup: .* are backups of different nodes/,
    );
    // Nor is the snapshot it read the node id from left there, or SQLite's -wal or -shm.
    assertEquals([...Deno.readDirSync(target)], []);
  }),
);

Deno.test(
  "restore --also refuses a copy that holds no node id",
  inTempDir(async (dir) => {
    const ours = await makeBackup(`${dir}/ours`, changes);
    const bare = `${dir}/bare.sqlite3`;
    const db = new DatabaseSync(bare);
    db.exec(
      "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name));" +
        "INSERT INTO vars (name, intval) VALUES ('data_version', 20)",
    );
    db.close();
    const other = await makeBackup(`${dir}/other`, [], { version: 20, path: bare });
    const target = `${dir}/node`;
    Deno.mkdirSync(target);
    const { code, output } = await run([ours, target, "--also", other]);
    assertEquals([code, output.stdout], [1, []]);
    assertEquals(output.stderr, [
      `Cannot restore backup: ${other} holds no node id (lightningd's vars.node_id), so it ` +
      `cannot be told a copy of the same node's backup as ${ours}: restore from this node's ` +
      `backup alone, without --also`,
    ]);
    assertEquals([...Deno.readDirSync(target)], []);
  }),
);

Deno.test(
  "restore --also takes the newest copy of one node, by snapshot or by changes",
  inTempDir(async (dir) => {
    // A copy made from the node's database at 11 that got no change since (a lagging async
    // copy), one that holds every change, one never written to, and one compacted later on
    // (its snapshot at 479, the newest).
    const lagging = await makeBackup(`${dir}/lagging`, [], {
      version: 11,
      path: databaseCopy(dir, "fresh-start"),
    });
    const whole = await makeBackup(`${dir}/whole`, changes);
    const empty = await makeBackup(`${dir}/empty`, []);
    const { code, output } = await run([
      lagging,
      `${dir}/at-15.sqlite3`,
      "--also",
      whole,
      "--also",
      empty,
    ]);
    assertEquals(code, 0, output.transcript);
    assertMatch(output.stdout[0], new RegExp(`^Restored ".*" at version 15: .*, from ${whole}$`));
    assertEquals(output.stdout[1], `The other copies: ${lagging} at 11, ${empty} at 0`);
    assertEquals(dataVersion(`${dir}/at-15.sqlite3`), 15);
    const compacted = await makeBackup(`${dir}/compacted`, [], {
      version: 479,
      path: databaseCopy(dir, "activity", true),
    });
    const newest = await run([whole, `${dir}/at-479.sqlite3`, "--also", compacted]);
    assertEquals(newest.code, 0, newest.output.transcript);
    assertMatch(newest.output.stdout[0], new RegExp(`at version 479: .*, from ${compacted}$`));
    assertEquals(dataVersion(`${dir}/at-479.sqlite3`), 479);
  }),
);

Deno.test(
  "restore --also refuses copies at the same version whose last changes differ",
  inTempDir(async (dir) => {
    // The primary went on from 14 with one change 15; an async copy, not reached since the
    // node stopped, kept another change 15 that the node never committed (or a copy was
    // altered). Both at 15: restore took whichever came first, and said nothing.
    const primary = await makeBackup(`${dir}/primary`, changes);
    const last = changes.at(-1)!;
    const other = {
      version: last.version,
      statements: ["INSERT INTO vars (name, val) VALUES ('uncommitted', 'x')", ...last.statements],
    };
    const copy = await makeBackup(`${dir}/copy`, [...changes.slice(0, -1), other]);
    for (const [first, second] of [[copy, primary], [primary, copy]]) {
      const target = `${dir}/node`;
      Deno.mkdirSync(target);
      const { code, output } = await run([first, target, "--also", second]);
      assertEquals([code, output.stdout], [1, []]);
      assertEquals(output.stderr, [
        `Cannot restore backup: ${first} and ${second} are both at version 15, but their ` +
        `changes 15 differ: one of them holds a change the node never committed (an async ` +
        `copy keeps its last change until it is reached again), or was altered, and restore ` +
        `cannot tell which the node has; give the synchronous copy (backup.lock's ` +
        `backend_url or one of its mirror_urls) first and add --accept-older to restore it`,
      ]);
      assertEquals([...Deno.readDirSync(target)], []);
      Deno.removeSync(target);
    }
    // A copy that ends with a snapshot at 15, given first, does not hide the two that differ.
    const snapshot = await makeBackup(`${dir}/snapshot`, [], {
      version: 15,
      path: databaseCopy(dir, "restart"),
    });
    const hidden = await run([
      snapshot,
      `${dir}/hidden.sqlite3`,
      "--also",
      primary,
      "--also",
      copy,
    ]);
    assertEquals([hidden.code, hidden.output.stdout], [1, []]);
    assertMatch(
      hidden.output.stderr[0],
      new RegExp(`^Cannot restore backup: ${primary} and ${copy} are both at version 15, but`),
    );
    assertEquals(existsSync(`${dir}/hidden.sqlite3`), false);
    // Asked for, the first given is restored, with the danger said.
    const asked = await run([primary, `${dir}/asked.sqlite3`, "--also", copy, "--accept-older"]);
    assertEquals(asked.code, 0, asked.output.transcript);
    assertMatch(asked.output.stdout[0], new RegExp(`at version 15: .*, from ${primary}$`));
    assertEquals(
      asked.output.stdout[1],
      `Danger: restored as asked (--accept-older), though ${copy} holds another change 15: ` +
        `if the node committed that one, this database is not the node's`,
    );
    assertEquals(
      dumpDatabase(`${dir}/asked.sqlite3`),
      dumpDatabase(loadFixture("restart").database),
    );
    // Copies that agree restore as always.
    const same = await makeBackup(`${dir}/same`, changes);
    const agreed = await run([primary, `${dir}/agreed.sqlite3`, "--also", same]);
    assertEquals(agreed.code, 0, agreed.output.transcript);
  }),
);

Deno.test(
  "restore --also takes copies at the same version that differ only in a PRAGMA hook after it",
  inTempDir(async (dir) => {
    // A migration's last hook (PRAGMA foreign_keys = ON) repeats version 15 and changes no
    // data; an async copy not reached since holds the same state at 15 without it.
    const primary = await makeBackup(`${dir}/primary`, [
      ...changes,
      { version: 15, statements: ["PRAGMA foreign_keys = ON"] },
    ]);
    const copy = await makeBackup(`${dir}/copy`, changes);
    for (const [first, second] of [[primary, copy], [copy, primary]]) {
      const target = `${dir}/node-${first === primary ? "a" : "b"}.sqlite3`;
      const { code, output } = await run([first, target, "--also", second]);
      assertEquals(code, 0, output.transcript);
      assertEquals(dumpDatabase(target), dumpDatabase(loadFixture("restart").database));
    }
  }),
);

Deno.test(
  "restore into a node's directory whose config keeps the database elsewhere says where it goes",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    Deno.writeFileSync(`${node}/hsm_secret`, new Uint8Array(32), { mode: 0o400 });
    Deno.writeTextFileSync(`${dir}/config`, "wallet=sqlite3://../ssd/node.sqlite3\n");
    Deno.mkdirSync(`${dir}/ssd`);
    const { code, output } = await run([url, node]);
    assertEquals([code, output.stdout], [1, []]);
    assertEquals(output.stderr, [
      `Cannot restore backup: lightningd's config keeps this node's database at ` +
      `"${dir}/ssd/node.sqlite3" (its wallet= line), not in "${node}": restore to ` +
      `"${dir}/ssd/node.sqlite3" itself`,
    ]);
    assertEquals([...Deno.readDirSync(node)].map((e) => e.name), ["hsm_secret"]);
    const there = await run([url, `${dir}/ssd/node.sqlite3`]);
    assertEquals(there.code, 0, there.output.transcript);
    assertEquals(dataVersion(`${dir}/ssd/node.sqlite3`), 15);
  }),
);

Deno.test(
  "restore --to-version into a node's directory whose config keeps the database outside it warns that the file is not checked",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    Deno.writeFileSync(`${node}/hsm_secret`, new Uint8Array(32), { mode: 0o400 });
    Deno.writeTextFileSync(`${node}/config`, `wallet=sqlite3://${dir}/ssd/node.sqlite3\n`);
    Deno.mkdirSync(`${dir}/ssd`);
    const { code, output } = await run([url, node, "--to-version", "12"]);
    assertEquals([code, output.stdout], [1, []]);
    assertEquals(output.stderr, [
      `Cannot restore backup: lightningd's config keeps this node's database at ` +
      `"${dir}/ssd/node.sqlite3" (its wallet= line), not in "${node}": restore to ` +
      `"${dir}/ssd/node.sqlite3" itself, but with --to-version only a state the node is to ` +
      `run on: outside the node's directory, restore does not tell that file from a copy, ` +
      `and does not refuse a version older than the backup's last there (restore it ` +
      `elsewhere to inspect it)`,
    ]);
    // That file, named, is not recognised as the node's: the older state is restored.
    const there = await run([url, `${dir}/ssd/node.sqlite3`, "--to-version", "12"]);
    assertEquals(there.code, 0, there.output.transcript);
    assertEquals(dataVersion(`${dir}/ssd/node.sqlite3`), 12);
  }),
);

Deno.test(
  "restore into a node's directory whose config cannot be read, or keeps no SQLite database, says to name the file",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    Deno.writeFileSync(`${node}/hsm_secret`, new Uint8Array(32), { mode: 0o400 });
    // A new machine: the config is back, the file it includes not yet.
    Deno.writeTextFileSync(`${dir}/config`, "include secrets.conf\n");
    const unread = await run([url, node]);
    assertEquals([unread.code, unread.output.stdout], [1, []]);
    assertMatch(
      unread.output.stderr[0],
      /^Cannot restore backup: cannot read lightningd's config to find its database: .*secrets\.conf.*; or name the database file itself as the target$/,
    );
    Deno.writeTextFileSync(`${dir}/config`, "wallet=postgres://cln:pw@db/cln\n");
    const postgres = await run([url, node]);
    assertEquals(postgres.output.stderr, [
      `Cannot restore backup: lightningd's config keeps this node's database outside SQLite ` +
      `(its wallet= line), so lightningd would not open one restored into "${node}": name a ` +
      `database file as the target`,
    ]);
    assertEquals([...Deno.readDirSync(node)].map((e) => e.name), ["hsm_secret"]);
    const named = await run([url, `${node}/lightningd.sqlite3`]);
    assertEquals(named.code, 0, named.output.transcript);
  }),
);

Deno.test(
  "restore into a node's directory whose config names its database through a link restores there",
  inTempDir(async (dir) => {
    const url = await makeBackup(`${dir}/backup`, changes);
    // ~/.lightning moved to another disk and linked back; the config names the old path.
    Deno.mkdirSync(`${dir}/disk/regtest`, { recursive: true });
    Deno.symlinkSync(`${dir}/disk`, `${dir}/home`);
    Deno.writeFileSync(`${dir}/disk/regtest/hsm_secret`, new Uint8Array(32), { mode: 0o400 });
    Deno.writeTextFileSync(
      `${dir}/disk/config`,
      `wallet=sqlite3://${dir}/home/regtest/lightningd.sqlite3:${dir}/replica.sqlite3\n`,
    );
    const { code, output } = await run([url, `${dir}/disk/regtest`]);
    assertEquals(code, 0, output.transcript);
    assertEquals(dataVersion(`${dir}/home/regtest/lightningd.sqlite3`), 15);
  }),
);

Deno.test(
  "restore --also refuses a copy named twice, in whatever form",
  inTempDir(async (dir) => {
    const backup = await makeBackup(`${dir}/backup`, changes);
    const again = `file://${dir}/backup/`;
    const { code, output } = await run([backup, `${dir}/a.sqlite3`, "--also", again]);
    assertEquals(code, 2);
    assertEquals(output.stderr, [
      `Usage error: ${again} is named twice: name each copy of the backup once: see ` +
      '"cln-backup restore --help"',
    ]);
    assertEquals(existsSync(`${dir}/a.sqlite3`), false);
  }),
);

Deno.test(
  "restore --also says an encrypted backup has no copies, and refuses a secret it would ignore",
  inTempDir(async (dir) => {
    // An encrypted backup given with --also (init and mirror make no copy of one): the
    // passphrase was ignored, and each copy was skipped saying restore asks for one.
    const source = `${dir}/source.sqlite3`;
    parentChildDatabase(source, 9);
    await makeEncryptedBackup(`${dir}/sealed`, { version: 9, path: source });
    const sealed = `file://${dir}/sealed`;
    const plain = await makeBackup(`${dir}/plain`, changes);
    const secret = `${dir}/passphrase`;
    Deno.writeTextFileSync(secret, PASSPHRASE, { mode: 0o600 });
    const given = await run([
      sealed,
      `${dir}/a.sqlite3`,
      "--also",
      plain,
      "--passphrase-file",
      secret,
    ]);
    assertEquals(given.code, 2);
    assertEquals(given.output.stderr, [
      "Usage error: --passphrase-file and --identity do not go with --also: an encrypted " +
      "backup has no copies (init and mirror make none); restore it alone, with its secret: " +
      'see "cln-backup restore --help"',
    ]);
    const skipped = await run([plain, `${dir}/b.sqlite3`, "--also", sealed]);
    assertEquals(skipped.code, 1);
    assertEquals(skipped.output.stdout, [
      `Skipped ${sealed}: it is encrypted, and an encrypted backup has no copies (init and ` +
      `mirror make none): restore it alone, without --also, with its secret`,
    ]);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "passphrase",
      "plain",
      "sealed",
      "source.sqlite3",
    ]);
  }),
);

/** A v1 fixture upgraded beside itself, then written to once: the converted is at 47. */
async function supersededV1(base: string): Promise<void> {
  Deno.copyFileSync(PRE_4090_BACKUP, `${base}/file.bkp`);
  assertEquals(await upgrade([`file://${base}/file.bkp`], new BufferedOutput()), 0);
  const backend = openBackend(`file://${base}/file.bkp.clnb`);
  await backend.append({
    version: 47,
    statements: ["UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = 46"],
  });
  backend.close();
}

Deno.test(
  "restore of a v1 file that upgrade converted, and the plugin went on from, is refused",
  inTempDir(async (base) => {
    // The Python plugin's URL (its README's file.bkp) is what an operator wrote down for the day
    // of a restore. Once upgrade converted it, the node writes to file.bkp.clnb and the v1 file
    // stays as it was: restoring it gave the old state, "at version N" and no word of the newer
    // backup; a node started on it broadcasts revoked state.
    await supersededV1(base);

    const refused = await run([`file://${base}/file.bkp`, `${base}/old.sqlite3`]);
    assertEquals(refused.code, 1, refused.output.transcript);
    assertMatch(
      refused.output.stderr.join("\n"),
      /^Cannot restore backup: ".*\/file\.bkp" is the Python plugin's v1 backup, which upgrade converted into file:\/\/.*\/file\.bkp\.clnb, at version 47 against 46 here: restore from that one/,
    );
    assert(!existsSync(`${base}/old.sqlite3`));

    // Asked for, the old state is restored all the same.
    const asked = await run([`file://${base}/file.bkp`, `${base}/old.sqlite3`, "--accept-older"]);
    assertEquals(asked.code, 0, asked.output.transcript);
    assertEquals(dataVersion(`${base}/old.sqlite3`), 46);
    // The converted backup restores as always.
    const current = await run([`file://${base}/file.bkp.clnb`, `${base}/new.sqlite3`]);
    assertEquals(current.code, 0, current.output.transcript);
  }, "restore-superseded-"),
);

Deno.test(
  "restore --to-version of a converted v1 file: a point in time the converted backup holds alike is not refused",
  inTempDir(async (base) => {
    // restoreNewest's rule: "A point in time is the same state in every copy that holds it:
    // none is lagging." Version 40 of file.bkp is version 40 of file.bkp.clnb.
    await supersededV1(base);
    const at40 = await run([
      `file://${base}/file.bkp`,
      `${base}/at40.sqlite3`,
      "--to-version",
      "40",
    ]);
    assertEquals(at40.code, 0, at40.output.transcript);
    assertEquals(dataVersion(`${base}/at40.sqlite3`), 40);
  }, "restore-superseded-to-"),
);

Deno.test(
  "restore --to-version of a converted v1 file at its last version is its newest state: refused as without",
  inTempDir(async (base) => {
    // Version 46, file.bkp's last, is the state the node left behind at the conversion: the
    // node went on to 47 in file.bkp.clnb.
    await supersededV1(base);
    const at46 = await run([
      `file://${base}/file.bkp`,
      `${base}/at46.sqlite3`,
      "--to-version",
      "46",
    ]);
    assertEquals(at46.code, 1, at46.output.transcript);
    assertMatch(
      at46.output.stderr.join("\n"),
      /at version 47 against 46 here: restore from that one/,
    );
    assert(!existsSync(`${base}/at46.sqlite3`));
  }, "restore-superseded-last-"),
);

Deno.test(
  "restore of a converted v1 file whose converted backup is damaged says so, not the old state silently",
  inTempDir(async (base) => {
    // The converted backup, written to since the conversion, fails its checks: the v1 file's
    // state is older than the node's, and restoring it without a word hands back an old database.
    await supersededV1(base);
    const log = `${base}/file.bkp.clnb/log-00000000000000000001.clnb`;
    const bytes = Deno.readFileSync(log);
    bytes.fill(0xff, 20_000, 20_004);
    Deno.writeFileSync(log, bytes);
    const refused = await run([`file://${base}/file.bkp`, `${base}/old.sqlite3`]);
    assertEquals(refused.code, 1, refused.output.transcript);
    assertMatch(refused.output.stderr.join("\n"), /file\.bkp\.clnb/);
    assert(!existsSync(`${base}/old.sqlite3`));
  }, "restore-superseded-damaged-"),
);

Deno.test(
  "restore refuses an encrypted backup sealed with another key than the node's backup.key",
  inTempDir(async (dir) => {
    const source = `${dir}/source.sqlite3`;
    parentChildDatabase(source, 9);
    // The node's own backup, and one a storage holder made for the same secret (an age
    // recipient is public): both open, only one is the node's.
    const own = await makeEncryptedBackup(`${dir}/own`, { version: 9, path: source });
    await makeEncryptedBackup(`${dir}/forged`, { version: 9, path: source });
    const node = `${dir}/regtest`;
    Deno.mkdirSync(node);
    writeKeyFile(node, own);
    const secret = `${dir}/passphrase`;
    Deno.writeTextFileSync(secret, PASSPHRASE, { mode: 0o600 });
    const forged = `file://${dir}/forged`;
    // Refused before the passphrase is asked for: no answer could make it the node's.
    const asked: string[] = [];
    const output = new BufferedOutput();
    const code = await restore([forged, node], output, (question) => {
      asked.push(question);
      return Promise.resolve(PASSPHRASE);
    });
    const refused = { code, output };
    assertEquals(asked, []);
    assertEquals(refused.code, 1);
    assertEquals(refused.output.stderr, [
      `Cannot unlock backup: "${dir}/forged" is sealed with another key than the node restored ` +
      `into ("${node}/backup.key" holds another): whoever can write the storage could have ` +
      `put a backup of their own there (an age recipient is public); restore the node's own ` +
      `backup, or, if this one is meant, into another directory`,
    ]);
    assertEquals([...Deno.readDirSync(node)].map((e) => e.name), ["backup.key"]);
    const restored = await run([`file://${dir}/own`, node, "--passphrase-file", secret]);
    assertEquals(restored.code, 0, restored.output.stderr.join("\n"));
    assertEquals(dumpDatabase(`${node}/lightningd.sqlite3`), dumpDatabase(source));
    // A backup.key that is not one cannot tell: refused, saying so.
    Deno.removeSync(`${node}/lightningd.sqlite3`);
    Deno.writeTextFileSync(`${node}/backup.key`, "{}");
    const unreadable = await run([`file://${dir}/own`, node, "--passphrase-file", secret]);
    assertEquals(unreadable.output.stderr, [
      `Cannot unlock backup: "${node}/backup.key" in the node restored into cannot be read as ` +
      `a key file (not a regular file, not readable by this user, or not cln-backup's): it ` +
      `tells the node's own backup from another; fix it, or restore into another directory`,
    ]);
    // Elsewhere than a node's directory, the forged one restores: nothing there tells.
    assertEquals((await run([forged, `${dir}/look.sqlite3`, "--passphrase-file", secret])).code, 0);
  }),
);

Deno.test("restore from a file backup the plugin compacts meanwhile reads it again, not damaged", async () => {
  const dir = Deno.makeTempDirSync();
  const all = recordedChanges(SCENARIOS);
  const path = `${dir}/backup`;
  createFileBackup(path);
  // The plugin: a base, then sealed logs after it that its next compaction deletes.
  const backend = FileBackend.open(`file://${path}`, path, { segmentBytes: 16 * 1024 });
  const compact = () =>
    compactWithWriter(backend, { target: backend.compactionTarget()!, retain: 1 });
  for (const change of all.slice(0, 200)) await backend.append(change);
  compact();
  for (const change of all.slice(200, 400)) await backend.append(change);
  // The compaction lands once, just after the restore read its first entry.
  const entries = FileBackupReader.prototype.entries;
  let landed = false;
  FileBackupReader.prototype.entries = function* (this: FileBackupReader, toVersion?: number) {
    for (const entry of entries.call(this, toVersion)) {
      yield entry;
      if (!landed) {
        landed = true;
        compact();
      }
    }
  };
  try {
    const { code, output } = await run([`file://${path}`, `${dir}/node.sqlite3`]);
    assertEquals(code, 0, output.transcript);
    assert(landed, "the compaction landed mid-read");
    assertMatch(output.stdout[0], new RegExp(`^Restored ".*" at version ${all[399].version}:`));
  } finally {
    FileBackupReader.prototype.entries = entries;
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test(
  "restore --also onto a database, or beside its journal, says so before reading any copy",
  inTempDir(async (dir) => {
    // Each copy's restore met the database and was "skipped": the newest was then called
    // unreadable and perhaps newer, and --accept-older advised, for what moving the old
    // database aside fixes.
    const mirror = await makeBackup(`${dir}/mirror`, changes);
    const copy = await makeBackup(`${dir}/copy`, changes);
    const target = `${dir}/node.sqlite3`;
    Deno.writeTextFileSync(target, "the old database");
    const onto = await run([mirror, target, "--also", copy]);
    assertEquals(onto.code, 1);
    assertEquals(onto.output.stdout, []);
    assertEquals(onto.output.stderr, [
      `Cannot restore backup: database already exists at "${target}": move it aside or ` +
      `choose another target`,
    ]);
    Deno.renameSync(target, `${dir}/moved.sqlite3`);
    Deno.writeTextFileSync(`${target}-journal`, "its journal");
    const beside = await run([mirror, target, "--also", copy]);
    assertEquals(beside.code, 1);
    assertEquals(beside.output.stdout, []);
    assertMatch(beside.output.stderr.join("\n"), /^Cannot restore backup: ".*-journal" is left /);
  }),
);
