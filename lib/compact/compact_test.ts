import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/support/assert.ts";
import { restoredDump } from "../../tests/support/restored.ts";
import { bumpStatement as bump } from "../../tests/support/statements.ts";
import { childRows, parentChildDatabase, rebuildParent } from "../../tests/support/migration.ts";
import { dumpAt } from "../../tests/support/node_at.ts";
import { SCENARIOS } from "../../tests/support/fixtures.ts";
import { recordedChanges } from "../../tests/support/cli_testing.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { readLayout } from "../format/layout.ts";
import { restoreBackup } from "../backup/restore.ts";
import { compactBackup, compactWithWriter } from "./compact.ts";
import { DataKey } from "../crypto/data_key.ts";
import { makeEncryptedBackup } from "../../tests/support/encrypted.ts";

const CHANGES = recordedChanges(SCENARIOS);
const LAST = CHANGES.at(-1)!.version;
/** Small segments, so the recorded runs roll many times. */
const SEGMENT_BYTES = 64 * 1024;

interface Backup {
  dir: string;
  path: string;
  url: string;
  writer: FileBackend;
}

function newBackup(): Backup {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compact-" });
  const path = `${dir}/backup`;
  const url = `file://${path}`;
  createFileBackup(path);
  return { dir, path, url, writer: FileBackend.open(url, path, { segmentBytes: SEGMENT_BYTES }) };
}

function dispose(backup: Backup): void {
  backup.writer.close();
  Deno.removeSync(backup.dir, { recursive: true });
}

/** Compacts as the plugin does: the writer stays open, the newest change stays on top. */
function compact(backup: Backup, retain = 1) {
  const target = backup.writer.state().rewindVersion;
  assert(target !== undefined, "the backup has a change on top to keep");
  return compactWithWriter(backup.writer, { target, retain });
}

Deno.test("compaction at many points of the recorded runs; each restore equals the node", async () => {
  const backup = newBackup();
  try {
    let sequence = 1;
    let compactions = 0;
    for (const [i, change] of CHANGES.entries()) {
      await backup.writer.append(change);
      const live = readLayout(backup.path).logs.at(-1)!.sequence;
      // After every sealed segment, and now and then mid-segment.
      if (live !== sequence || i % 97 === 50) {
        sequence = live;
        const result = compact(backup);
        compactions++;
        assertEquals(result.base_version, backup.writer.state().rewindVersion);
        assert(result.after.backupsize <= result.before.backupsize + SEGMENT_BYTES * 16);
        if (i % 3 === 0) {
          assertEquals(restoredDump(backup.url, backup.dir), dumpAt(CHANGES, change.version));
        }
      }
    }
    assert(compactions > 10, `only ${compactions} compactions`);
    const layout = readLayout(backup.path);
    assertEquals(layout.bases.length, 1);
    assert(layout.logs.length <= 2, `${layout.logs.length} logs left`);
    assertEquals(restoredDump(backup.url, backup.dir), dumpAt(CHANGES, LAST));
    // The writer's own accounting matches what a reader finds.
    const described = new FileBackupReader(backup.url, backup.path).describe();
    assertEquals(backup.writer.state().bytes, described.bytes);
  } finally {
    dispose(backup);
  }
});

Deno.test("compaction twice in a row folds nothing the second time", async () => {
  const backup = newBackup();
  try {
    for (const change of CHANGES.slice(0, 200)) await backup.writer.append(change);
    const first = compact(backup);
    assert(first.versions_folded > 100, `${first.versions_folded} folded`);
    const second = compact(backup);
    assertEquals([second.base_version, second.versions_folded], [null, 0]);
    assertEquals(second.after, first.after);
    assertEquals(restoredDump(backup.url, backup.dir), dumpAt(CHANGES, CHANGES[199].version));
  } finally {
    dispose(backup);
  }
});

Deno.test("version_count counts as the Python plugin: each change held, a snapshot of many parts once", async () => {
  const backup = newBackup();
  try {
    const recorded = CHANGES.slice(0, 200);
    for (const change of recorded) await backup.writer.append(change);
    let version = recorded.at(-1)!.version;
    const next = async (statements: string[] = []) => {
      await backup.writer.append({
        version: version + 1,
        statements: [...statements, bump(version)],
      });
      version++;
    };
    // A database over 3 MiB: its snapshot is stored as 4 parts and an end record.
    await next(["CREATE TABLE big (b BLOB)", `INSERT INTO big VALUES (zeroblob(${3 << 20}))`]);
    for (let i = 0; i < 5; i++) await next();
    // Sealed logs end in a seal record, which is no change.
    assert(readLayout(backup.path).logs.length > 1, "the log rolled");
    const first = compact(backup);
    assertEquals(first.before.version_count, 200 + 1 + 5, "206 changes, no snapshot");
    const reader = new FileBackupReader(`file://${backup.path}`, backup.path);
    const parts = [...reader.entries()].filter((e) => e.kind === "snapshot-part").length;
    reader.close();
    assert(parts >= 4, `a snapshot of ${parts} parts`);
    // The snapshot, and the changes the live log keeps: the base's own and the newest.
    assertEquals(backup.writer.state().records, 2);
    assertEquals(first.after.version_count, 1 + 2);
    for (let i = 0; i < 7; i++) await next();
    const second = compact(backup);
    assertEquals(second.before.version_count, 1 + 2 + 7);
    assertEquals(second.after.version_count, 1 + 2);
    // The writer's counts equal a reader's scan of the files.
    assertEquals(second.after, new FileBackupReader(backup.url, backup.path).heldStats());
  } finally {
    dispose(backup);
  }
});

Deno.test("point-in-time restores around compactions, keeping 1 base and keeping 3", async () => {
  for (const retain of [1, 3]) {
    const backup = newBackup();
    try {
      const bases: number[] = [];
      for (const [i, change] of CHANGES.entries()) {
        await backup.writer.append(change);
        if (i === 120 || i === 260 || i === 400) bases.push(compact(backup, retain).base_version!);
      }
      const held = bases.slice(-retain);
      assertEquals(readLayout(backup.path).bases.map((b) => b.version), held);
      // Before, at and after each base still held, and the last version.
      const versions = [...held.flatMap((v) => [v - 1, v, v + 7]), LAST].filter((v) =>
        v >= held[0]
      );
      for (const version of versions) {
        assertEquals(
          restoredDump(backup.url, backup.dir, version),
          dumpAt(CHANGES, version),
          `version ${version}`,
        );
      }
      await assertRejects(
        () => restoredDump(backup.url, backup.dir, held[0] - 1),
        new RegExp(`its oldest snapshot is at version ${held[0]}, and nothing older is kept`),
      );
    } finally {
      dispose(backup);
    }
  }
});

Deno.test("compaction right after a roll deletes the log that ends at its target", async () => {
  const backup = newBackup();
  try {
    // Past the first 60 changes, up to the first append in a new log: the sealed log then
    // ends at the compaction's target, the version before the newest change.
    let i = 0;
    for (let live = 0;;) {
      await backup.writer.append(CHANGES[i++]);
      const now = readLayout(backup.path).logs.at(-1)!.sequence;
      if (i > 60 && now !== live) break;
      live = now;
    }
    const result = compact(backup);
    assertEquals(result.base_version, CHANGES[i - 2].version);
    assertEquals(readLayout(backup.path).logs.map((l) => l.sequence), [
      readLayout(backup.path).logs.at(-1)!.sequence,
    ]);
    assertEquals(restoredDump(backup.url, backup.dir), dumpAt(CHANGES, CHANGES[i - 1].version));
  } finally {
    dispose(backup);
  }
});

/** A backup whose live log ends in a migration's PRAGMA hook at version 10, then rolls. */
async function migrationBackup(dir: string, key?: DataKey): Promise<string> {
  const source = `${dir}/source.sqlite3`;
  parentChildDatabase(source, 9);
  const path = `${dir}/backup`;
  if (key) await makeEncryptedBackup(path, { version: 9, path: source }, [], key);
  else createFileBackup(path, { version: 9, path: source });
  const writer = FileBackend.open(`file://${path}`, path, { segmentBytes: 1024, key });
  try {
    await writer.append({ version: 10, statements: ["INSERT INTO parent VALUES (2)", bump(9)] });
    // A migration that rebuilds `parent`, as lightningd runs it: foreign keys off first, in
    // a hook of its own that repeats version 10; the rebuild is too large for this log.
    await writer.append({ version: 10, statements: ["PRAGMA foreign_keys = OFF;"] });
    const noise = Array.from(crypto.getRandomValues(new Uint8Array(2048)), (b) => b.toString(16))
      .join("");
    await writer.append({
      version: 11,
      statements: [`SELECT '${noise}'`, ...rebuildParent(10)],
    });
    assertEquals(writer.compactionTarget(), 10);
    const result = compactBackup(`file://${path}`, path, { target: 10, key });
    writer.compacted();
    assertEquals(result.base_version, 10);
  } finally {
    writer.close();
  }
  return path;
}

for (const encrypted of [false, true]) {
  Deno.test(
    `compaction keeps a log that ends in a migration's PRAGMA hook at its target${
      encrypted ? ", encrypted" : ""
    }`,
    async () => {
      const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compact-" });
      try {
        const key = encrypted ? await DataKey.generate() : undefined;
        const path = await migrationBackup(dir, key);
        const reader = new FileBackupReader(`file://${path}`, path, { key });
        const restored = restoreBackup(reader, `${dir}/r.db`);
        // Replayed with foreign keys on, the rebuild would have cascaded to the children.
        assertEquals(childRows(restored.path), 3);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  );
}

Deno.test("a compaction whose deletes fail says the backup restores, and the next one deletes them", async () => {
  const backup = newBackup();
  try {
    for (const change of CHANGES.slice(0, 200)) await backup.writer.append(change);
    // The plan cannot be written (a full disk, say): its temporary name is a directory.
    Deno.mkdirSync(`${backup.path}/compaction.plan.tmp/in-the-way`, { recursive: true });
    const logs = readLayout(backup.path).logs.length;
    assertThrows(
      () => compact(backup),
      new RegExp(
        `^Cannot compact backup: .*\\(deleting the segments its bases no longer need, in ` +
          `"${backup.path}"\\); the backup restores as it stands, and the next compaction ` +
          `deletes them: free space or fix the disk$`,
      ),
    );
    assertEquals(readLayout(backup.path).logs.length, logs);
    assertEquals(restoredDump(backup.url, backup.dir), dumpAt(CHANGES, CHANGES[199].version));
    Deno.removeSync(`${backup.path}/compaction.plan.tmp`, { recursive: true });
    const again = compact(backup);
    assertEquals(again.base_version, null);
    assertEquals(readLayout(backup.path).logs.length, 1);
    assertEquals(restoredDump(backup.url, backup.dir), dumpAt(CHANGES, CHANGES[199].version));
  } finally {
    dispose(backup);
  }
});

Deno.test("a compaction's scratch database is its owner's alone, whatever the umask", async () => {
  const backup = newBackup();
  try {
    for (const change of CHANGES.slice(0, 200)) await backup.writer.append(change);
    // The backup directory is others' to enter (created under umask 022): the node's database
    // restored in it, an encrypted backup's in plaintext, must not be theirs to read.
    Deno.chmodSync(backup.path, 0o755);
    const modes = new Set<number>();
    compactWithWriter(backup.writer, {
      target: backup.writer.state().rewindVersion!,
      onProgress: () => {
        for (const entry of Deno.readDirSync(backup.path)) {
          if (!entry.name.startsWith("compacting-")) continue;
          modes.add(Deno.statSync(`${backup.path}/${entry.name}`).mode! & 0o777);
        }
      },
    });
    assertEquals([...modes], [0o700]);
  } finally {
    dispose(backup);
  }
});
