/**
 * The rewind, end to end: the node stops after the backup stored change N but before it
 * committed it; on restart the node sends a *different* change N, the plugin drops the stored
 * one for good ("dropping change N ..."), and a restore holds the new change's rows and never
 * the dropped one's. Two ways the node can stop there: the plugin is killed after its fsync,
 * before it answers; or lightningd dies after the plugin answered `continue`, before it commits.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { newLightningDir } from "./support/crash_point.ts";
import { DatabaseSync } from "node:sqlite";
import { CRASH_ENV } from "../lib/fs/crash_point.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { bumpStatement } from "./support/statements.ts";

const hex = (text: string) =>
  Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");

/** A datastore entry, as `lightning-cli datastore` writes it. */
function datastore(key: string, data: string): string {
  return `INSERT INTO datastore VALUES (x'${hex(key)}', x'${hex(data)}', 0)`;
}

function keys(path: string): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare("SELECT key FROM datastore ORDER BY key").all()
      .map((row) => new TextDecoder().decode(row.key as Uint8Array));
  } finally {
    db.close();
  }
}

/** Every statement the backup holds, in order. */
function storedStatements(url: string): string[] {
  const reader = openReader(url);
  try {
    const out: string[] = [];
    for (const entry of reader.entries()) {
      if (entry.kind === "change") out.push(...entry.statements);
    }
    return out;
  } finally {
    reader.close();
  }
}

/** A lightning dir that ran the recorded fresh-start and restart with the plugin. */
async function startedNode(): Promise<{ dir: string; url: string; version: number }> {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-rewind-" });
  const url = newLightningDir(dir);
  for (const name of ["fresh-start", "restart"] as const) {
    const node = FakeLightningd.spawn({ lightningDir: dir });
    assertEquals(await node.replay(loadFixture(name).raw), "committed");
    assertEquals((await node.close()).code, 0);
  }
  const db = new DatabaseSync(`${dir}/lightningd.sqlite3`, { readOnly: true });
  const version = Number(
    db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get()!.intval,
  );
  db.close();
  return { dir, url, version };
}

/** Restarts the node: a new plugin process, `getmanifest`, the first write, then `init`. */
async function restart(dir: string, first: string[]) {
  const node = FakeLightningd.spawn({ lightningDir: dir });
  await node.getmanifest();
  const version = node.dataVersion() + 1;
  assertEquals(await node.transaction(first), "committed");
  await node.init();
  return { node, version };
}

function restoreAndCompare(dir: string, url: string, name: string): string {
  const restored = `${dir}/${name}.sqlite3`;
  restoreBackup(openReader(url), restored);
  assertEquals(dumpDatabase(restored), dumpDatabase(`${dir}/lightningd.sqlite3`));
  return restored;
}

/** The restart after the lost commit: rewind, new change N, and two more restarts. */
async function afterLostCommit(dir: string, url: string, dropped: number): Promise<void> {
  // The backup holds the change the node never committed.
  assert(storedStatements(url).some((s) => s.includes(hex("rewind/dropped"))));
  const reader = openReader(url);
  assertEquals(reader.describe().lastVersion, dropped);
  reader.close();

  const { node, version } = await restart(dir, [datastore("rewind/replacement", "new N")]);
  assertEquals(version, dropped);
  const versionLogs = node.logs.filter((l) => /^(dropping|backup in step)/.test(l.message));
  assertEquals(versionLogs.length, 1);
  assertMatch(
    versionLogs[0].message,
    new RegExp(`^dropping change ${dropped} from the backup: the node stopped before committing`),
  );
  assertEquals(versionLogs[0].level, "info");
  assertEquals(await node.transaction([datastore("rewind/after", "N+1")]), "committed");
  const status = (await node.request("backup-status", {})).result as Record<string, unknown>;
  assertEquals(status.version, dropped + 1);
  assertEquals(status.ok, true);
  assertEquals((await node.stop()).code, 0);

  // Gone from the backup for good, not just skipped.
  assert(!storedStatements(url).some((s) => s.includes(hex("rewind/dropped"))));
  const restored = restoreAndCompare(dir, url, "restored-1");
  const stored = keys(restored).filter((k) => k.startsWith("rewind/"));
  assertEquals(stored, ["rewind/after", "rewind/kept", "rewind/replacement"]);

  // A restart with no write, then one with a write: in step, nothing dropped.
  const quiet = FakeLightningd.spawn({ lightningDir: dir });
  await quiet.getmanifest();
  await quiet.init();
  assertEquals((await quiet.stop()).code, 0);
  assertEquals(quiet.logs.filter((l) => l.level === "broken" || l.level === "unusual"), []);
  const again = await restart(dir, [datastore("rewind/later", "N+2")]);
  assertEquals(
    again.node.logs.filter((l) => /^(dropping|backup in step)/.test(l.message)).map((l) =>
      l.message
    ),
    [`backup in step with the node at version ${dropped + 1}`],
  );
  assertEquals((await again.node.stop()).code, 0);
  assertEquals(
    keys(restoreAndCompare(dir, url, "restored-2")).filter((k) => k.startsWith("rewind/")),
    [
      "rewind/after",
      "rewind/kept",
      "rewind/later",
      "rewind/replacement",
    ],
  );
}

Deno.test("rewind: the plugin dies after its fsync, before it answers", async () => {
  const { dir, url, version } = await startedNode();
  try {
    const node = FakeLightningd.spawn({
      lightningDir: dir,
      env: { [CRASH_ENV]: "after-sync-before-answer:2" },
    });
    await node.getmanifest();
    assertEquals(await node.transaction([datastore("rewind/kept", "N-1")]), "committed");
    await node.init();
    assertEquals(await node.transaction([datastore("rewind/dropped", "old N")]), "aborted");
    assertMatch(node.aborted!, /^plugin died during db_write/);
    assertEquals(node.dataVersion(), version + 1);
    assertEquals((await node.close()).signal, "SIGKILL");
    await afterLostCommit(dir, url, version + 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("rewind: lightningd dies after the plugin answered, before it commits", async () => {
  const { dir, url, version } = await startedNode();
  try {
    const node = FakeLightningd.spawn({ lightningDir: dir });
    await node.getmanifest();
    assertEquals(await node.transaction([datastore("rewind/kept", "N-1")]), "committed");
    await node.init();
    // lightningd's db_commit_transaction up to the hook, by hand; then it dies: no commit, and
    // the plugin sees its input end.
    const writes = [
      datastore("rewind/dropped", "old N"),
      bumpStatement(version + 1),
    ];
    node.db.exec("BEGIN");
    for (const statement of writes) node.db.exec(statement);
    const answer = await node.request("db_write", { data_version: version + 2, writes });
    assertEquals(answer.result, { result: "continue" });
    node.db.exec("ROLLBACK");
    assertEquals((await node.close()).code, 0);
    await afterLostCommit(dir, url, version + 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
