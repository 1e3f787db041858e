/**
 * The truth a restore is held to: the database lightningd had at a version, rebuilt by
 * running the recorded changes as lightningd ran them (each a transaction; a change of only
 * PRAGMAs outside one), independently of any backup reader.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import type { Change } from "../../lib/backends/backend.ts";
import { isPragmaOnly } from "../../lib/sqlite/apply.ts";
import { dumpOpenDatabase } from "./dump.ts";

/**
 * The dump of the database after every change up to and including `version`. Built in
 * memory: only its dump is kept, and a file's journal and page writes cost more than the SQL.
 */
export function dumpAt(changes: readonly Change[], version: number): string {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec("PRAGMA foreign_keys = ON");
    for (const change of changes) {
      if (change.version > version) break;
      const outside = isPragmaOnly(change.statements);
      if (!outside) db.exec("BEGIN");
      for (const statement of change.statements) db.exec(statement);
      if (!outside) db.exec("COMMIT");
    }
    return dumpOpenDatabase(db);
  } finally {
    db.close();
  }
}
