/**
 * lightningd's `vars.data_version`: the version of the last committed change, which the
 * backup's last version must match.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/** The database's data_version, or undefined when it has none (not a lightningd database). */
function readDataVersion(db: DatabaseSync): number | undefined {
  let row: Record<string, unknown> | undefined;
  try {
    row = db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get();
  } catch (error) {
    // No vars table (or one without intval), or no SQLite file (SQLITE_NOTADB): not
    // lightningd's. Any other failure (a hot journal, a lock) says nothing about what the
    // database is, and is said as it is.
    const notADatabase = (error as { errcode?: unknown }).errcode === 26;
    if (notADatabase || /^no such (table|column)/.test((error as Error).message)) return undefined;
    throw error;
  }
  const version = row === undefined ? NaN : Number(row.intval);
  return Number.isSafeInteger(version) && version >= 0 ? version : undefined;
}

/**
 * The data_version of the database file at `path`, opened read-only for it; `undefined` when
 * it is not lightningd's. What stops the read (a hot journal, a lock, damage) is thrown.
 */
export function dataVersionAt(path: string): number | undefined {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return readDataVersion(db);
  } finally {
    db.close();
  }
}
