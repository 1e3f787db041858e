/**
 * Every branch of the version check (DESIGN section 2), driven end to end: the real plugin
 * process under the fake lightningd, on a real file backup, with the log line the operator
 * sees and what the node's database and a restore hold afterwards.
 */
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals } from "./support/assert.ts";
import { DATABASE_NAME, FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { bumpStatement } from "./support/statements.ts";
import { pathToFileURL } from "node:url";
import { advised, runAsPrinted } from "./support/as_printed.ts";

const SCHEMA = [
  "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name))",
  "INSERT INTO vars (name, intval) VALUES ('data_version', 0)",
  "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)",
];

const bump = bumpStatement;
const note = (text: string) => `INSERT INTO notes (note) VALUES ('${text}')`;

interface Node {
  dir: string;
  url: string;
  db: string;
  spawned: FakeLightningd[];
}

/**
 * A lightning dir with an empty backup and its backup.lock; afterwards every plugin started
 * on it is gone and the dir removed, whatever happened.
 */
async function withNode(fn: (node: Node) => Promise<void>, prefix?: string): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix });
  const spawned: FakeLightningd[] = [];
  try {
    createFileBackup(`${dir}/backup`);
    const url = pathToFileURL(`${dir}/backup`).href;
    writeLockFile(dir, { backend_url: url });
    await fn({ dir, url, db: `${dir}/${DATABASE_NAME}`, spawned });
  } finally {
    // Killing a plugin that already exited is harmless; one left running must not outlive us.
    for (const lightningd of spawned) await lightningd.kill().catch(() => {});
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Starts the plugin as lightningd does: getmanifest first. */
async function start(node: Node): Promise<FakeLightningd> {
  const lightningd = FakeLightningd.spawn({ lightningDir: node.dir });
  node.spawned.push(lightningd);
  await lightningd.getmanifest();
  return lightningd;
}

/** Stops the node (`shutdown` once past `init`): the plugin exits 0 and wrote only JSON-RPC. */
async function stop(lightningd: FakeLightningd): Promise<void> {
  const status = await lightningd.stop();
  assertEquals(status.code, 0);
  assertEquals(lightningd.garbage, []);
}

/** A first run: the schema (version 1), then the notes "a" and "b" (versions 2, 3). */
async function runToVersion3(node: Node): Promise<void> {
  const lightningd = await start(node);
  assertEquals(await lightningd.transaction(SCHEMA), "committed");
  await lightningd.init();
  assertEquals(await lightningd.transaction([note("a")]), "committed");
  assertEquals(await lightningd.transaction([note("b")]), "committed");
  assertEquals(lightningd.dataVersion(), 3);
  assertEquals(hookLogs(lightningd), [
    { level: "info", message: "backup in step with the node at version 0" },
    { level: "info", message: `backing up to ${node.url} at version 1` },
  ]);
  await stop(lightningd);
}

function lastVersion(node: Node): number {
  const reader = openReader(node.url);
  try {
    return reader.describe().lastVersion;
  } finally {
    reader.close();
  }
}

/** Restores the backup next to the node's database; returns the restored file's path. */
function restore(node: Node, name: string, toVersion?: number): string {
  const path = `${node.dir}/${name}`;
  const reader = openReader(node.url);
  try {
    restoreBackup(reader, path, { toVersion });
  } finally {
    reader.close();
  }
  return path;
}

function notes(path: string): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare("SELECT note FROM notes ORDER BY id").all().map((r) => String(r.note));
  } finally {
    db.close();
  }
}

/** Puts an older database in the node's place: the backup restored up to `version`. */
function putBackVersion(node: Node, version: number): void {
  Deno.removeSync(node.db);
  restore(node, DATABASE_NAME, version);
}

/** The non-`continue` answer the plugin gave, as the fake recorded it. */
function refusal(lightningd: FakeLightningd): unknown {
  const answers = lightningd.received.filter((m) => m.id !== undefined && m.method === undefined);
  return (answers.at(-1)?.result as Record<string, unknown>)?.result;
}

/** What the plugin logged after its line at start (tests/startup_check_test.ts checks that). */
const hookLogs = (lightningd: FakeLightningd) =>
  lightningd.logs.filter((l) => !/^Backup ".*" opened and checked at start: /.test(l.message));

const brokenLines = (lightningd: FakeLightningd) =>
  lightningd.logs.filter((l) => l.level === "broken");

/** The node's dir in the tests that paste advice: a space and a quote, to be shell-quoted. */
const AWKWARD = "it's a node ";

Deno.test("version check e2e: in step after a restart, the backup goes on", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    const lightningd = await start(node);
    assertEquals(await lightningd.transaction([note("c")]), "committed");
    await lightningd.init();
    assertEquals(hookLogs(lightningd)[0], {
      level: "info",
      message: "backup in step with the node at version 3",
    });
    assertEquals(brokenLines(lightningd), []);
    await stop(lightningd);
    assertEquals(lastVersion(node), 4);
    const restored = restore(node, "restored.sqlite3");
    assertEquals(dumpDatabase(restored), dumpDatabase(node.db));
    assertEquals(notes(restored), ["a", "b", "c"]);
  });
});

Deno.test("version check e2e: a change stored but never committed is rewound for real", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    // lightningd reports change 4, the plugin stores it and answers continue, then the node
    // dies before its COMMIT: the database stays at 3, the backup holds 4.
    let lightningd = await start(node);
    const writes = [note("never committed"), bump(3)];
    lightningd.db.exec("BEGIN");
    for (const statement of writes) lightningd.db.exec(statement);
    const answer = await lightningd.request("db_write", { data_version: 4, writes });
    assertEquals(answer.result, { result: "continue" });
    lightningd.db.exec("ROLLBACK");
    await lightningd.kill();
    assertEquals(lastVersion(node), 4);

    lightningd = await start(node);
    assertEquals(lightningd.dataVersion(), 3);
    assertEquals(await lightningd.transaction([note("committed instead")]), "committed");
    assertEquals(hookLogs(lightningd)[0], {
      level: "info",
      message: "dropping change 4 from the backup: the node stopped before committing it",
    });
    assertEquals(brokenLines(lightningd), []);
    const status = await lightningd.request("backup-status", {});
    assertEquals((status.result as Record<string, unknown>).version, 4);
    assertEquals((status.result as Record<string, unknown>).records, 4);
    await stop(lightningd);

    const restored = restore(node, "restored.sqlite3");
    assertEquals(notes(restored), ["a", "b", "committed instead"]);
    assertEquals(dumpDatabase(restored), dumpDatabase(node.db));
    // Restoring to version 4 gives the committed change, not the dropped one.
    assertEquals(notes(restore(node, "restored-4.sqlite3", 4)), ["a", "b", "committed instead"]);
  });
});

Deno.test("version check e2e: a database two versions behind stops the node (lost state)", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    putBackVersion(node, 1);
    const before = dumpDatabase(node.db);
    const lightningd = await start(node);
    assertEquals(lightningd.dataVersion(), 1);
    assertEquals(await lightningd.transaction([note("on an old database")]), "aborted");
    assert(lightningd.aborted?.startsWith("Plugin returned failed db_write"), lightningd.aborted);
    assert(refusal(lightningd) !== "continue");
    const quoted = `'${node.dir.replaceAll("'", `'\\''`)}'`;
    const url = `'${node.url.replaceAll("'", `'\\''`)}'`;
    assertEquals(brokenLines(lightningd), [{
      level: "broken",
      message: "Cannot continue: the node's database is at version 1 but the backup already " +
        "holds version 3; the node lost state (an old database put back?): stop it and " +
        `restore its database from the backup: move "${node.db}" (or the file a wallet= ` +
        "line of lightningd's config names) aside with any -journal or -wal beside it, then " +
        `run "cln-backup restore ${url} ${quoted}"`,
    }]);
    await stop(lightningd);
    assertEquals(dumpDatabase(node.db), before);
    assertEquals(lastVersion(node), 3);
    assertEquals(notes(restore(node, "restored.sqlite3")), ["a", "b"]);
    // As printed: refused while the old database is there; once it is moved aside, restored.
    const command = advised(brokenLines(lightningd)[0].message);
    const refused = await runAsPrinted(command, node.dir);
    assertEquals(refused.code, 1, refused.out);
    assert(refused.out.includes(`database already exists at "${node.db}"`), refused.out);
    Deno.renameSync(node.db, `${node.db}.old`);
    const restored = await runAsPrinted(command, node.dir);
    assertEquals(restored.code, 0, restored.out);
    assertEquals(notes(node.db), ["a", "b"]);
    const again = await start(node);
    assertEquals(again.dataVersion(), 3);
    assertEquals(await again.transaction([note("c")]), "committed");
    await again.kill();
  }, AWKWARD);
});

Deno.test("version check e2e: one behind a change inside a snapshot cannot be rewound", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    // A new backup whose snapshot already holds version 3, and the node back at 2.
    Deno.copyFileSync(node.db, `${node.dir}/copy.sqlite3`);
    createFileBackup(`${node.dir}/snapshot-backup`, {
      version: 3,
      path: `${node.dir}/copy.sqlite3`,
    });
    putBackVersion(node, 2);
    writeLockFile(node.dir, { backend_url: `file://${node.dir}/snapshot-backup` });
    const before = dumpDatabase(node.db);
    const lightningd = await start(node);
    assertEquals(await lightningd.transaction([note("c")]), "aborted");
    assertEquals(brokenLines(lightningd).length, 1);
    assert(
      brokenLines(lightningd)[0].message.startsWith(
        "Cannot continue: the node's database is at version 2 but the backup already holds " +
          "version 3; the node lost state",
      ),
      brokenLines(lightningd)[0].message,
    );
    await stop(lightningd);
    assertEquals(dumpDatabase(node.db), before);
  });
});

Deno.test("version check e2e: a node ahead of its backup stops (backup out of date)", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    // The node ran without the plugin for two transactions.
    const db = new DatabaseSync(node.db);
    db.exec(`BEGIN; ${note("unbacked 1")}; ${bump(3)}; COMMIT;`);
    db.exec(`BEGIN; ${note("unbacked 2")}; ${bump(4)}; COMMIT;`);
    db.close();
    const before = dumpDatabase(node.db);
    const lightningd = await start(node);
    assertEquals(lightningd.dataVersion(), 5);
    assertEquals(await lightningd.transaction([note("c")]), "aborted");
    assert(refusal(lightningd) !== "continue");
    const quoted = `'${node.dir.replaceAll("'", `'\\''`)}'`;
    const url = `'${node.url.replaceAll("'", `'\\''`)}'`;
    assertEquals(brokenLines(lightningd), [{
      level: "broken",
      message: "Cannot continue: the backup holds version 3 but the node's database is at " +
        `version 5; the node ran without the plugin: with lightningd stopped, move the ` +
        `backup "${node.dir}/backup" and "${node.dir}/backup.lock" aside, then run "cln-backup init --lightning-dir ${quoted} ${url}" to start a new ` +
        "backup from the current database",
    }]);
    await stop(lightningd);
    assertEquals(dumpDatabase(node.db), before);
    assertEquals(lastVersion(node), 3);
    // As printed: refused for backup.lock, then for the backup at the URL; with both moved
    // aside, a new backup of the database as it is.
    const command = advised(brokenLines(lightningd)[0].message);
    const refused = await runAsPrinted(command, node.dir);
    assertEquals(refused.code, 1, refused.out);
    assert(refused.out.includes('backup.lock" already exists'), refused.out);
    Deno.renameSync(`${node.dir}/backup.lock`, `${node.dir}/backup.lock.old`);
    const existing = await runAsPrinted(command, node.dir);
    assertEquals(existing.code, 1, existing.out);
    assert(existing.out.includes(`"${node.dir}/backup" already exists`), existing.out);
    Deno.renameSync(`${node.dir}/backup`, `${node.dir}/backup.old`);
    const made = await runAsPrinted(command, node.dir);
    assertEquals(made.code, 0, made.out);
    assertEquals(lastVersion(node), 5);
    const again = await start(node);
    assertEquals(await again.transaction([note("c")]), "committed");
    await again.kill();
  }, AWKWARD);
});

Deno.test("version check e2e: PRAGMA hooks repeating the version never rewind", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    // The fresh-start fixture's pattern: `PRAGMA foreign_keys = OFF;` repeating the version the
    // database holds, a table rebuild that bumps, then `PRAGMA foreign_keys = ON;` repeating
    // the new version. Here the OFF hook is the first hook after a restart, at the backup's B.
    let lightningd = await start(node);
    assertEquals(await lightningd.dbWrite(3, ["PRAGMA foreign_keys = OFF;"]), "committed");
    assertEquals(
      await lightningd.transaction([
        "ALTER TABLE notes RENAME TO temp_notes;",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT, extra INTEGER DEFAULT 0);",
        "INSERT INTO notes (id, note) SELECT id, note FROM temp_notes;",
        "DROP TABLE temp_notes;",
      ]),
      "committed",
    );
    assertEquals(await lightningd.dbWrite(4, ["PRAGMA foreign_keys = ON;"]), "committed");
    assertEquals(hookLogs(lightningd)[0], {
      level: "info",
      message: "backup in step with the node at version 3",
    });
    await stop(lightningd);
    // Restart once more: the backup now ends with the ON hook at 4, and the first hook is
    // again a PRAGMA hook repeating 4.
    lightningd = await start(node);
    assertEquals(await lightningd.dbWrite(4, ["PRAGMA foreign_keys = OFF;"]), "committed");
    assertEquals(await lightningd.dbWrite(4, ["PRAGMA foreign_keys = ON;"]), "committed");
    assertEquals(await lightningd.transaction([note("after")]), "committed");
    assertEquals(hookLogs(lightningd)[0], {
      level: "info",
      message: "backup in step with the node at version 4",
    });
    await stop(lightningd);
    assertEquals(lastVersion(node), 5);
    const restored = restore(node, "restored.sqlite3");
    // Change 3 ("b") was not dropped.
    assertEquals(notes(restored), ["a", "b", "after"]);
    assertEquals(dumpDatabase(restored), dumpDatabase(node.db));
  });
});

Deno.test("version check e2e: after the first write, a write not on top of the backup stops", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    const lightningd = await start(node);
    assertEquals(await lightningd.transaction([note("c")]), "committed");
    const before = dumpDatabase(node.db);
    // A transaction that claims the database held 6 while the backup is at 4.
    assertEquals(await lightningd.dbWrite(7, [note("skipped"), bump(6)]), "aborted");
    assertEquals(brokenLines(lightningd), [{
      level: "broken",
      message: "Cannot continue: the node wrote on top of version 6 but the backup is at 4; " +
        `stop the node and check it with "cln-backup status '${node.url}'"`,
    }]);
    // Once stopped, the plugin refuses every later write, without logging again.
    assertEquals(await lightningd.transaction([note("d")]), "aborted");
    assertEquals(brokenLines(lightningd).length, 1);
    const status = (await lightningd.request("backup-status", {})).result as Record<
      string,
      unknown
    >;
    assertEquals(status.ok, false);
    assertEquals(status.version, 4);
    await stop(lightningd);
    assertEquals(dumpDatabase(node.db), before);
    assertEquals(lastVersion(node), 4);
  });
});

/** The live log's path: the backup of these tests never rolls. */
function liveLog(node: Node): string {
  return `${node.dir}/backup/log-${"1".padStart(20, "0")}.clnb`;
}

Deno.test("version check e2e: a torn record after B, the node at B: cut, and the node goes on", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    const end = Deno.statSync(liveLog(node)).size;
    Deno.writeFileSync(liveLog(node), new Uint8Array(10).fill(7), { append: true });
    const lightningd = await start(node);
    assertEquals(await lightningd.transaction([note("c")]), "committed");
    assertEquals(hookLogs(lightningd).slice(0, 2), [
      {
        level: "unusual",
        message: `cut 10 torn bytes at offset ${end} of "${liveLog(node)}": a crash ` +
          `interrupted an append, which was never acknowledged`,
      },
      { level: "info", message: "backup in step with the node at version 3" },
    ]);
    await stop(lightningd);
    assertEquals(notes(restore(node, "restored.sqlite3")), ["a", "b", "c"]);
  });
});

Deno.test("version check e2e: a damaged last change, the node at B, stops as a damaged backup", async () => {
  await withNode(async (node) => {
    await runToVersion3(node);
    // One bit of change 3's payload, the last bytes of the file: read alone, it looks torn.
    const bytes = Deno.readFileSync(liveLog(node));
    bytes[bytes.length - 1] ^= 1;
    Deno.writeFileSync(liveLog(node), bytes);
    const lightningd = await start(node);
    assertEquals(lightningd.dataVersion(), 3);
    assertEquals(await lightningd.transaction([note("c")]), "aborted");
    assertEquals(refusal(lightningd) !== "continue", true);
    const broken = brokenLines(lightningd);
    assertEquals(broken.length, 1);
    assert(
      /^Cannot continue: the node's database is at version 3 but the backup's change 3 is damaged \(\d+ bytes at offset \d+ of ".*log-0+1\.clnb" fail their checks\); the backup is damaged/
        .test(broken[0].message),
      broken[0].message,
    );
    // The node kept its database; the backup was left as it was.
    assertEquals(lightningd.dataVersion(), 3);
    assertEquals(Deno.readFileSync(liveLog(node)), bytes);
    await lightningd.kill();
  });
});
