/**
 * A table-rebuilding migration as lightningd runs it, for the tests that a restore replays
 * its `PRAGMA foreign_keys = OFF` hook: a node whose `child` rows reference `parent` with
 * `ON DELETE CASCADE`, so a rebuild of `parent` replayed with foreign keys on deletes them.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { bumpStatement } from "./statements.ts";

/** Creates the node's database at `path`, at `version`, with one parent and three children. */
export function parentChildDatabase(path: string, version: number): void {
  const node = new DatabaseSync(path);
  node.exec(`
    PRAGMA foreign_keys = ON;
    CREATE TABLE vars (name TEXT, intval INTEGER, PRIMARY KEY (name));
    INSERT INTO vars VALUES ('data_version', ${version});
    CREATE TABLE parent (id INTEGER PRIMARY KEY);
    CREATE TABLE child (pid INTEGER REFERENCES parent(id) ON DELETE CASCADE);
    INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1), (1), (1);`);
  node.close();
}

/** The statements of the change that rebuilds `parent`, bumping `from` to `from + 1`. */
export function rebuildParent(from: number): string[] {
  return [
    "CREATE TABLE parent2 (id INTEGER PRIMARY KEY)",
    "INSERT INTO parent2 SELECT id FROM parent",
    "DROP TABLE parent",
    "ALTER TABLE parent2 RENAME TO parent",
    bumpStatement(from),
  ];
}

/** How many `child` rows the database at `path` holds (3 unless a rebuild cascaded). */
export function childRows(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return Number(db.prepare("SELECT count(*) AS n FROM child").get()?.n);
  } finally {
    db.close();
  }
}
