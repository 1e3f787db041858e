/**
 * A compaction's disk use, on small tmpfs mounts: it needs room beside the backup for one
 * copy of the new base's database and no more (the database is moved into the base part by
 * part, never held beside it whole); and one that runs out of disk fails cleanly: it says
 * the backup is unchanged, leaves nothing behind, and the writer keeps storing changes while
 * space remains for them. Needs root to mount a tmpfs; elsewhere it says so and skips.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { dumpAt } from "./support/node_at.ts";
import { SCENARIOS } from "./support/fixtures.ts";
import { BufferedOutput, recordedChanges } from "./support/cli_testing.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { readLayout } from "../lib/format/layout.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { Compactor } from "../lib/compact/compactor.ts";
import { DEFAULT_POLICY } from "../lib/compact/policy.ts";
import { bumpStatement } from "./support/statements.ts";
import { DatabaseSync } from "node:sqlite";
import { mountTmpfs, run, usedBytes } from "./support/tmpfs.ts";
import { compact } from "../lib/cli/compact.ts";
import type { Change } from "../lib/backends/backend.ts";

const CHANGES = recordedChanges(SCENARIOS);
const HELD_BACK = 20;

function directorySize(dir: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isFile) total += Deno.statSync(`${dir}/${entry.name}`).size;
  }
  return total;
}

/** A new backup at `dir` holding `changes`, in 64 KiB segments: built where space is plenty. */
async function staged(dir: string, changes: Change[]): Promise<string> {
  createFileBackup(dir);
  const builder = FileBackend.open(`file://${dir}`, dir, { segmentBytes: 64 * 1024 });
  for (const change of changes) await builder.append(change);
  builder.close();
  return dir;
}

Deno.test("compaction out of disk fails cleanly; the writer keeps appending", async () => {
  const work = Deno.makeTempDirSync({ prefix: "cln-backup-enospc-" });
  const mount = `${work}/small`;
  Deno.mkdirSync(mount);
  try {
    // The backup of all but the last changes, built where space is plenty.
    const staging = await staged(`${work}/staging`, CHANGES.slice(0, -HELD_BACK));
    // Room for the backup and the last changes, not for a compaction's scratch database.
    const size = Math.ceil((directorySize(staging) + 160 * 1024) / 4096) * 4096;
    if (!mountTmpfs(mount, size)) return;
    const path = `${mount}/backup`;
    assert(run("cp", ["-a", staging, path]), "copy the backup onto the tmpfs");
    const url = `file://${path}`;
    const writer = FileBackend.open(url, path, { segmentBytes: 64 * 1024 });
    try {
      const compactor = new Compactor(writer, () => DEFAULT_POLICY);
      const compaction = compactor.compact();
      for (const change of CHANGES.slice(-HELD_BACK)) await writer.append(change);
      await assertRejects(
        () => compaction,
        /^Cannot compact backup: .*full.*the backup is unchanged/,
      );
      const last = compactor.status().last;
      assert(last && !last.ok);
      assertMatch(last.error, /building the base at version \d+ in ".*small\/backup"/);
      assertEquals(readLayout(path).temporaries, []);
      assertEquals(readLayout(path).bases, []);
      assertEquals(writer.state().version, CHANGES.at(-1)!.version);
    } finally {
      writer.close();
    }
    const restored = restoreBackup(new FileBackupReader(url, path), `${work}/restored.sqlite3`);
    assertEquals(dumpDatabase(restored.path), dumpAt(CHANGES, CHANGES.at(-1)!.version));
  } finally {
    run("umount", [mount]);
    Deno.removeSync(work, { recursive: true });
  }
});

/** Hex text, as lightningd stores its values: zstd packs it to about half. */
function hex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes / 2)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

Deno.test("compaction needs room for one database beside the backup, not a database and its base", async () => {
  const work = Deno.makeTempDirSync({ prefix: "cln-backup-room-" });
  const mount = `${work}/small`;
  Deno.mkdirSync(mount);
  try {
    // A node of a few MiB (several snapshot parts), and changes in many sealed logs.
    const node = `${work}/node.sqlite3`;
    const db = new DatabaseSync(node);
    db.exec("CREATE TABLE vars (name TEXT PRIMARY KEY, intval INTEGER)");
    db.exec("INSERT INTO vars VALUES ('data_version', 1)");
    db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)");
    const insert = db.prepare("INSERT INTO notes (text) VALUES (?)");
    for (let i = 0; i < 120; i++) insert.run(hex(24 * 1024));
    db.close();
    const staging = `${work}/staging`;
    createFileBackup(staging, { version: 1, path: node });
    const changes = Array.from({ length: 160 }, (_, i) => ({
      version: i + 2,
      statements: [`INSERT INTO notes (text) VALUES ('${hex(24 * 1024)}')`, bumpStatement(i + 1)],
    }));
    const builder = FileBackend.open(`file://${staging}`, staging, { segmentBytes: 256 * 1024 });
    for (const change of changes.slice(0, -2)) await builder.append(change);
    builder.close();
    const target = changes.at(-3)!.version;
    const database = restoreBackup(
      new FileBackupReader(`file://${staging}`, staging),
      `${work}/target.sqlite3`,
      { toVersion: target },
    );
    const databaseBytes = Deno.statSync(database.path).size;

    if (!mountTmpfs(mount, "64m")) return;
    const path = `${mount}/backup`;
    assert(run("cp", ["-a", staging, path]), "copy the backup onto the tmpfs");
    // Room for the backup, one more change and one copy of the database, a page or two more.
    const slack = 64 * 1024;
    const size = usedBytes(mount) + databaseBytes + slack;
    assert(run("mount", ["-o", `remount,size=${size}`, mount]), "shrink the tmpfs");
    const url = `file://${path}`;
    const writer = FileBackend.open(url, path, { segmentBytes: 256 * 1024 });
    let baseBytes: number;
    try {
      await writer.append(changes.at(-2)!);
      const result = await new Compactor(writer, () => DEFAULT_POLICY).compact();
      assertEquals(result.base_version, target);
      baseBytes = Deno.statSync(readLayout(path).bases[0].path).size;
      await writer.append(changes.at(-1)!);
    } finally {
      writer.close();
    }
    // The database and its base side by side would not have fitted.
    assert(slack < baseBytes, `the slack of ${slack} bytes holds the base of ${baseBytes}`);
    const restored = restoreBackup(new FileBackupReader(url, path), `${work}/restored.sqlite3`);
    const staged = FileBackend.open(`file://${staging}`, staging);
    await staged.append(changes.at(-2)!);
    await staged.append(changes.at(-1)!);
    staged.close();
    const expected = restoreBackup(
      new FileBackupReader(`file://${staging}`, staging),
      `${work}/expected.sqlite3`,
    );
    assertEquals(dumpDatabase(restored.path), dumpDatabase(expected.path));
  } finally {
    run("umount", [mount]);
    Deno.removeSync(work, { recursive: true });
  }
});

Deno.test("compact on the command line out of disk: the backup is unchanged, and no running node is named", async () => {
  const work = Deno.makeTempDirSync({ prefix: "cln-backup-enospc-cli-" });
  const mount = `${work}/small`;
  Deno.mkdirSync(mount);
  try {
    const staging = await staged(`${work}/staging`, CHANGES);
    // Room for the backup, not for a compaction's scratch database.
    const size = Math.ceil((directorySize(staging) + 100 * 1024) / 4096) * 4096;
    if (!mountTmpfs(mount, size)) return;
    const path = `${mount}/backup`;
    assert(run("cp", ["-a", staging, path]), "copy the backup onto the tmpfs");
    const output = new BufferedOutput();
    assertEquals(await compact([`file://${path}`], output), 1);
    assertMatch(
      output.stderr.join("\n"),
      /^Cannot compact backup: .*full .*; the backup is unchanged \(a compaction needs room for one more copy of the database beside it\)$/,
    );
    assertEquals(readLayout(path).temporaries, []);
    assertEquals(readLayout(path).bases, []);
  } finally {
    run("umount", [mount]);
    Deno.removeSync(work, { recursive: true });
  }
});
