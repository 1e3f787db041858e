import { assertEquals, assertRejects, assertThrows } from "../../tests/support/assert.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { existsSync } from "../fs/exists.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { openReader } from "../backends/open.ts";
import { restoreBackup } from "./restore.ts";
import { bumpStatement } from "../../tests/support/statements.ts";
import { childRows, parentChildDatabase, rebuildParent } from "../../tests/support/migration.ts";

const bump = bumpStatement;

/** A backup of the given changes, appended as the plugin would, without the version check. */
async function backupOf(changes: { version: number; statements: string[] }[]): Promise<string> {
  const dir = Deno.makeTempDirSync();
  createFileBackup(`${dir}/backup`);
  const backend = FileBackend.open(`file://${dir}/backup`, `${dir}/backup`);
  for (const change of changes) await backend.append(change);
  backend.close();
  return dir;
}

const first = {
  version: 1,
  statements: [
    "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name))",
    "INSERT INTO vars (name, intval) VALUES ('data_version', 0)",
    "CREATE TABLE t (x INTEGER)",
    bump(0),
  ],
};
const second = { version: 2, statements: ["INSERT INTO t VALUES (2)", bump(1)] };
const third = { version: 3, statements: ["INSERT INTO t VALUES (3)", bump(2)] };

Deno.test("restore applies a PRAGMA hook that repeats a version", async () => {
  const pragma = { version: 1, statements: ["PRAGMA foreign_keys = OFF;"] };
  const dir = await backupOf([first, pragma, second]);
  const result = restoreBackup(openReader(`file://${dir}/backup`), `${dir}/db.sqlite3`);
  assertEquals([result.version, result.changes], [2, 3]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("restore refuses a change stored twice, and a gap, leaving no file", async () => {
  for (const changes of [[first, second, second, third], [first, third]]) {
    const dir = await backupOf(changes);
    await assertRejects(
      () => restoreBackup(openReader(`file://${dir}/backup`), `${dir}/db.sqlite3`),
      // A gap is seen by the reader, which names where; a change stored twice by the restore.
      /^Cannot (restore backup: it goes from version \d to \d, so changes are missing or repeated|read backup: change 3 follows version 1 at offset \d+ of ")/,
    );
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["backup"]);
    assertEquals(existsSync(`${dir}/db.sqlite3`), false);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("restore runs a migration's PRAGMA hook stored at the snapshot's version", async () => {
  const dir = Deno.makeTempDirSync();
  const source = `${dir}/source.sqlite3`;
  parentChildDatabase(source, 10);
  createFileBackup(`${dir}/backup`, { version: 10, path: source });
  const backend = FileBackend.open(`file://${dir}/backup`, `${dir}/backup`);
  // A migration that rebuilds `parent`, as lightningd runs it: foreign keys off around it.
  await backend.append({ version: 10, statements: ["PRAGMA foreign_keys = OFF;"] });
  await backend.append({ version: 11, statements: rebuildParent(10) });
  await backend.append({ version: 11, statements: ["PRAGMA foreign_keys = ON;"] });
  backend.close();
  restoreBackup(openReader(`file://${dir}/backup`), `${dir}/restored.sqlite3`);
  assertEquals(childRows(`${dir}/restored.sqlite3`), 3);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("restore clears what a killed restore of the same pid left, and never replaces a database", async () => {
  const dir = await backupOf([first, second]);
  const target = `${dir}/db.sqlite3`;
  Deno.writeTextFileSync(`${target}.restoring-${Deno.pid}`, "left by a killed restore");
  const result = restoreBackup(openReader(`file://${dir}/backup`), target);
  assertEquals(result.version, 2);
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["backup", "db.sqlite3"]);
  await assertRejects(
    () => restoreBackup(openReader(`file://${dir}/backup`), target),
    /^Cannot restore backup: database already exists at/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("restore: a change that attaches another file (a crafted backup) writes nothing outside the target", async () => {
  // A plain backup's statements are whatever its files say; ATTACH and VACUUM INTO would
  // create a database file at any path the operator may write (a web root, a dotfile). A
  // change that starts with a PRAGMA runs outside the transaction, where VACUUM may run.
  for (
    const evil of [
      (path: string) => ({
        version: 2,
        statements: [`ATTACH DATABASE '${path}' AS e; CREATE TABLE e.pwn (x)`, bump(1)],
      }),
      (path: string) => ({
        version: 1,
        statements: [`PRAGMA foreign_keys = ON; VACUUM INTO '${path}'`],
      }),
    ]
  ) {
    const outside = Deno.makeTempDirSync();
    const path = `${outside}/planted`;
    const dir = await backupOf([first, evil(path)]);
    assertThrows(
      () => restoreBackup(openReader(`file://${dir}/backup`), `${dir}/db.sqlite3`),
      /^Cannot apply change [12]: too many attached databases - max 0 in: /,
    );
    assertEquals(existsSync(path), false);
    assertEquals(existsSync(`${dir}/db.sqlite3`), false);
    Deno.removeSync(dir, { recursive: true });
    Deno.removeSync(outside, { recursive: true });
  }
});

Deno.test("a database that appears at the target during a restore is kept, and the line says what to do", async () => {
  // Two terminals restoring into the same directory: the second to finish keeps the first's.
  const dir = await backupOf([first, second, third]);
  const reader = openReader(`file://${dir}/backup`);
  const target = `${dir}/db.sqlite3`;
  const racing = Object.create(reader, {
    entries: {
      value: function* (toVersion?: number) {
        yield* reader.entries(toVersion);
        Deno.writeTextFileSync(target, "the other restore's");
      },
    },
  });
  const error = assertThrows(() => restoreBackup(racing, target));
  assertEquals(
    error.message,
    `Cannot restore backup: a database appeared at "${target}" while this restore ran ` +
      `(another restore, or a process writing there): it was left as it is, and this ` +
      `restore's removed: check which database the node is to use`,
  );
  assertEquals(Deno.readTextFileSync(target), "the other restore's");
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["backup", "db.sqlite3"]);
  reader.close();
  Deno.removeSync(dir, { recursive: true });
});
