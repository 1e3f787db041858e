/**
 * A canonical text dump of a SQLite database, like `sqlite3 .dump`: the schema, then every
 * row of every table in rowid order, so two databases compare row for row.
 *
 * @module
 */
import { DatabaseSync, type SQLOutputValue } from "node:sqlite";

/** Each byte's two hex digits: the crash sweeps dump hundreds of kilobytes of blobs a trial. */
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function literal(value: SQLOutputValue): string {
  if (value === null) return "NULL";
  if (value instanceof Uint8Array) {
    let hex = "";
    for (const byte of value) hex += HEX[byte];
    return `X'${hex}'`;
  }
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`;
  return String(value);
}

/** The dump of the database file at `path`, opened read-only. */
export function dumpDatabase(path: string): string {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return dumpOpenDatabase(db);
  } finally {
    db.close();
  }
}

/** The dump of an open database (one in memory, say). */
export function dumpOpenDatabase(db: DatabaseSync): string {
  const lines: string[] = [];
  const objects = db.prepare(
    "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY type, name",
  ).all();
  for (const { type, name, sql } of objects) {
    lines.push(`${sql};`);
    if (type !== "table" || String(name).startsWith("sqlite_")) continue;
    const rows = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`);
    rows.setReadBigInts(true);
    for (const row of rows.all()) {
      lines.push(`INSERT INTO "${name}" VALUES(${Object.values(row).map(literal).join(",")});`);
    }
  }
  return lines.join("\n");
}
