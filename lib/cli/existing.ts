/**
 * `init --existing`: sets a node up again on the backup it was restored from. After a
 * restore on a new machine the database equals what the backup restores to, at its last
 * version, so the plugin can go on appending to that backup; a new backup is not needed, and
 * on a server, where the node's storage is not empty, could not be made without its
 * operator. The backup is taken only when it restores, here, to a database equal row for row
 * to the node's: any other database (another node's, an older or newer state of this one)
 * is refused with what it is.
 *
 * @module
 */
import { DatabaseSync, type SQLOutputValue } from "node:sqlite";
import type { BackupReader } from "../backends/backend.ts";
import { connectReader } from "../backends/open.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { CREDENTIAL_NAME, credentialIn } from "../backends/socket/credential.ts";
import { NoCredentialError, SocketBackupReader } from "../backends/socket/reader.ts";
import { restoreBackup } from "../backup/restore.ts";
import { restoreTargetOf } from "./node_database.ts";
import { type DataKey, sameBytes } from "../crypto/data_key.ts";
import { existsSync } from "../fs/exists.ts";
import { dataVersionOf } from "./new_backup.ts";
import { dataVersionAt } from "../sqlite/data_version.ts";
import type { Prompt } from "./secrets.ts";
import { s3Unlock, unlockReader } from "./unlock.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { makeScratchDir, removeScratchDir } from "../fs/scratch_dir.ts";

const ACTION = "Cannot init backup";

/** The backup at `url`, checked to restore to the node's database in `dir`. */
export interface ExistingBackup {
  version: number;
  /** An encrypted backup's data key, for the plugin's key file. */
  key?: DataKey;
}

/**
 * Checks that the backup at `url` ends at the version of `database` and restores to a
 * database equal to it; refuses with one line saying what differs. The backup is read with
 * what the plugin will use: a server's with `dir`'s backup.credential, an S3 one's with its
 * keys' file there (init checks it is there first: the plugin reads no environment).
 */
export async function checkExisting(
  url: string,
  dir: string,
  database: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
): Promise<ExistingBackup> {
  const target = restoreTargetOf(dir, database);
  const restoreCommand = cliCommand("restore", `${shellQuote(url)} ${shellQuote(target)}`);
  if (!existsSync(database)) {
    throw new Error(
      `${ACTION}: --existing takes the backup a database was restored from, and "${database}" ` +
        `does not exist: restore it first ("${restoreCommand}")`,
    );
  }
  const version = dataVersionOf(database, database);
  const scratch = makeScratchDir("existing");
  let reader: BackupReader;
  // An S3 reader keeps its key to itself: it is taken as it is opened.
  let s3Key: DataKey | undefined;
  const unlock = s3Unlock(url, values, prompt);
  try {
    reader = parseBackupUrl(url).scheme === "socket"
      ? await SocketBackupReader.fetch(url, undefined, credentialIn(dir), scratch)
      : await connectReader(url, dir, async (wrapped, id) => s3Key = await unlock(wrapped, id));
  } catch (error) {
    removeScratchDir(scratch);
    if (error instanceof NoCredentialError) {
      // The plugin reads its credential from DIR only, and so does --existing, which reads
      // the backup with what the plugin will use: CLN_BACKUP_CREDENTIAL would change nothing.
      throw new Error(
        `${ACTION}: the server refused a client without a node credential, and the plugin ` +
          `reads its credential from "${dir}/${CREDENTIAL_NAME}" only, which is not there: ` +
          `put the node's credential back there (the line "server add-node" printed, as kept ` +
          `with hsm_secret; mode 0600), then run this again`,
      );
    }
    throw new Error(`${ACTION}: ${(error as Error).message}`);
  }
  try {
    const fileKey = await unlockReader(reader, values, prompt);
    const last = reader.describe().lastVersion;
    if (last !== version) {
      throw new Error(
        `${ACTION}: the backup ${url} is at version ${last}, but "${database}" is at ` +
          `${version}: ${
            last > version
              ? `restore the newest state from it (move this database aside, then "${restoreCommand}")`
              : "it misses changes the node made; init a new backup instead"
          }`,
      );
    }
    const restored = `${scratch}/restored.sqlite3`;
    restoreBackup(reader, restored);
    const why = howTheyDiffer(restored, database);
    if (why !== undefined) {
      throw new Error(
        `${ACTION}: the backup ${url} is at the database's version ${version} but does not ` +
          `restore to "${database}" (${why}): it is not this node's backup, or the database ` +
          `was changed without the plugin; init a new backup instead`,
      );
    }
    return { version, key: fileKey ?? s3Key };
  } finally {
    reader.close();
    removeScratchDir(scratch);
  }
}

/**
 * What a refusal of a backup that exists adds when it ends at the database's version
 * `version`: the database may have been restored from it.
 */
export function existingHint(lastVersion: number | undefined, database: string): string {
  let version: number | undefined;
  try {
    version = dataVersionAt(database);
  } catch {
    return ""; // A database that cannot be read now was not restored from it: no hint.
  }
  if (lastVersion === undefined || lastVersion !== version) return "";
  return `; if "${database}" was restored from it, run init again with --existing to go on ` +
    `with that backup`;
}

/** One value as read below: its SQLite type, and a text as its bytes. */
function sameValue(a: SQLOutputValue, b: SQLOutputValue): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return sameBytes(a, b);
  // An integer is a bigint (exact past 2^53), a real a number: 1 is not 1.0.
  return Object.is(a, b);
}

/** `name` quoted as an SQL identifier. */
function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The tables whose rows make a database: every table but SQLite's own, except
 * sqlite_sequence (the next AUTOINCREMENT ids, which the next inserts take). A name is
 * SQLite's when it starts with "sqlite_" (LIKE would take its "_" for any character).
 */
const TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND " +
  "(lower(substr(name, 1, 7)) <> 'sqlite_' OR name = 'sqlite_sequence') ORDER BY name";

/**
 * Reads every row of `table` in `db`, in the order of its rowid (of its primary key, for a
 * table WITHOUT ROWID), each value with its type and a text as its bytes: a text that is not
 * UTF-8 would read as U+FFFD in either.
 */
function rowsOf(db: DatabaseSync, table: string): Iterator<Record<string, SQLOutputValue>> {
  const columns = db.prepare("SELECT name, pk FROM pragma_table_info(?)").all(table);
  const withoutRowid = db.prepare(
    "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?",
  ).get(table)?.wr === 1;
  const order = withoutRowid
    ? columns.filter((c) => Number(c.pk) > 0).sort((x, y) => Number(x.pk) - Number(y.pk))
      .map((c) => ident(String(c.name))).join(", ")
    : "rowid";
  const values = columns.map((c, i) => {
    const name = ident(String(c.name));
    return `typeof(${name}) AS t${i}, CASE typeof(${name}) WHEN 'text' THEN ` +
      `CAST(${name} AS BLOB) ELSE ${name} END AS v${i}`;
  });
  const statement = db.prepare(
    `SELECT ${values.join(", ")} FROM ${ident(table)} ORDER BY ${order}`,
  );
  // Integers as bigints: node:sqlite's iterator ends, as if the table did, at an integer
  // past 2^53 read as a number (a mainnet short_channel_id).
  statement.setReadBigInts(true);
  return statement.iterate();
}

/** Where the databases in `a` and `b` differ (schema, or a table's rows); `undefined`: nowhere. */
export function howTheyDiffer(a: string, b: string): string | undefined {
  const one = new DatabaseSync(a, { readOnly: true });
  const two = new DatabaseSync(b, { readOnly: true });
  try {
    const schemaOf = (db: DatabaseSync) =>
      db.prepare(
        "SELECT type, name, sql FROM sqlite_master WHERE lower(substr(name, 1, 7)) <> 'sqlite_' " +
          "ORDER BY type, name",
      ).all().map((r) => `${r.type} ${r.name}: ${r.sql}`);
    const schema = schemaOf(one);
    if (schema.join("\n") !== schemaOf(two).join("\n")) return "their schemas differ";
    const tablesOf = (db: DatabaseSync) => db.prepare(TABLES).all().map((r) => String(r.name));
    const tables = tablesOf(one);
    if (tables.join("\n") !== tablesOf(two).join("\n")) return "their schemas differ";
    for (const table of tables) {
      const rowsOne = rowsOf(one, table);
      const rowsTwo = rowsOf(two, table);
      for (;;) {
        const x = rowsOne.next();
        const y = rowsTwo.next();
        if (x.done || y.done) {
          if (x.done !== y.done) return `table ${table} holds more rows in one`;
          break;
        }
        const left = Object.values(x.value);
        const right = Object.values(y.value);
        if (left.length !== right.length || left.some((v, i) => !sameValue(v, right[i]))) {
          return `a row of table ${table} differs`;
        }
      }
    }
    return undefined;
  } finally {
    one.close();
    two.close();
  }
}
