/**
 * Restores a database from a backup: streamed into a temporary file beside the target,
 * checked (`PRAGMA integrity_check`, `vars.data_version`), synced, then renamed into place.
 * An existing database is never overwritten, and a failed restore leaves nothing behind.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import type { BackupReader, Tail } from "../backends/backend.ts";
import { syncDir, writeAll } from "../fs/durable.ts";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { execStatement, isPragmaOnly } from "../sqlite/apply.ts";
import { bumpedFrom } from "./bump.ts";
import { claimWorkPath, workPath } from "../fs/work_path.ts";
import { atStep } from "../fs/step_seam.ts";
import { checkInterrupted } from "../fs/interrupt.ts";
import { lastBlock } from "./last_block.ts";
import { DATABASE_NAME } from "./database_name.ts";

/** How {@linkcode restoreBackup} restores: up to which version, with what progress, how durably. */
export interface RestoreOptions {
  /** Restore the state as of this change (point in time) instead of the latest. */
  toVersion?: number;
  /** Called now and then with the version reached. */
  onProgress?: (version: number) => void;
  /**
   * Sync the result into place (default). A compaction's scratch copy, read once and then
   * deleted, skips it: a crash loses nothing the backup does not hold, and a large fsync
   * would make the plugin's appends wait behind it on the same disk.
   */
  durable?: boolean;
}

/** What a restore made, and from what. */
export interface RestoreResult {
  /** The database file it wrote. */
  path: string;
  /** The version the database holds. */
  version: number;
  /** Changes applied, after the snapshot when there was one. */
  changes: number;
  /** Version of the snapshot it started from; `undefined` when it started from none. */
  snapshotVersion: number | undefined;
  /** Bytes at the backup's end that failed their checks and were left out. */
  tail: Tail | undefined;
  /** The newest block the database had processed (see last_block.ts), when it holds any. */
  lastBlock: number | undefined;
}

/** Where a restore to `target` (a file, or a directory to hold `lightningd.sqlite3`) writes. */
export function restoreTarget(target: string): string {
  try {
    if (Deno.statSync(target).isDirectory) return `${target.replace(/\/+$/, "")}/${DATABASE_NAME}`;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return target;
}

function openForRestore(path: string): { db: DatabaseSync; journal: string } {
  const db = new DatabaseSync(path);
  // No other database file: a backup's statements (a plain one's are whatever its files say)
  // could else ATTACH, or VACUUM INTO, a file at any path this process may write.
  // (SQLITE_LIMIT_ATTACHED; node:sqlite's `limits`, which the bundled types do not name yet.)
  (db as unknown as { limits: { attach: number } }).limits.attach = 0;
  const journal = String(db.prepare("PRAGMA journal_mode").get()?.journal_mode ?? "delete");
  // The temporary file is thrown away on any failure, so it needs no journal or syncs.
  db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON;");
  return { db, journal };
}

function dataVersion(db: DatabaseSync): number | undefined {
  try {
    const row = db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get();
    return row === undefined ? undefined : Number(row.intval);
  } catch {
    return undefined;
  }
}

/**
 * Refuses a journal or WAL file left at `path` by the database moved aside: SQLite takes
 * either for the restored database's own on its first open and rolls it in, so lightningd
 * would start on pages of the old database (a rollback journal turns the restored file back
 * into the old one) although the restore checked out.
 */
function refuseOldJournal(path: string): void {
  for (const suffix of ["-journal", "-wal"]) {
    if (!existsSync(`${path}${suffix}`)) continue;
    throw new Error(
      `Cannot restore backup: "${path}${suffix}" is left from the database that was at ` +
        `"${path}", and SQLite would apply it to the restored one: move it aside with that ` +
        `database, then restore again`,
    );
  }
}

/**
 * Refuses a restore to `path` while a database, or the journal or WAL of one moved aside, is
 * there: a restore never overwrites a database.
 */
export function refuseOccupiedTarget(path: string): void {
  if (existsSync(path)) {
    throw new Error(
      `Cannot restore backup: database already exists at "${path}": move it aside or choose ` +
        `another target`,
    );
  }
  refuseOldJournal(path);
}

/** Restores the backup `reader` reads into `target`. */
export function restoreBackup(
  reader: BackupReader,
  target: string,
  options: RestoreOptions = {},
): RestoreResult {
  const path = restoreTarget(target);
  refuseOccupiedTarget(path);
  const tmp = workPath(path, "restoring");
  const leftovers = [tmp, `${tmp}-journal`, `${tmp}-wal`, `${tmp}-shm`];
  removeAll(leftovers);
  const claim = claimWorkPath(tmp, "file");
  let snapshotFile: Deno.FsFile | undefined;
  let open: { db: DatabaseSync; journal: string } | undefined;
  try {
    let version: number | undefined;
    let snapshotVersion: number | undefined;
    let changes = 0;
    let tail: Tail | undefined;
    for (const entry of reader.entries(options.toVersion)) {
      checkInterrupted();
      if (entry.kind === "tail") {
        tail = { path: entry.path, offset: entry.offset, bytes: entry.bytes };
        continue;
      }
      if (entry.kind === "snapshot-part") {
        if (!snapshotFile) {
          open?.db.close();
          open = undefined;
          snapshotFile = Deno.openSync(tmp, { write: true, create: true, truncate: true });
        }
        writeAll(snapshotFile, entry.bytes);
        continue;
      }
      if (entry.kind === "snapshot-end") {
        snapshotFile?.close();
        snapshotFile = undefined;
        snapshotVersion = version = entry.version;
        continue;
      }
      // A change moves the version up by one; only a hook without a bump (the migrations'
      // PRAGMAs) repeats it. Anything else is a gap or a change stored twice.
      const step = bumpedFrom(entry.statements) === undefined ? 0 : 1;
      if (version !== undefined && entry.version !== version + step) {
        throw new Error(
          `Cannot restore backup: it goes from version ${version} to ${entry.version}, ` +
            `so changes are missing or repeated: restore from another copy`,
        );
      }
      if (!open) {
        open = openForRestore(tmp);
        open.db.exec("BEGIN");
      }
      if (isPragmaOnly(entry.statements)) {
        open.db.exec("COMMIT");
        for (const s of entry.statements) execStatement(open.db, s, entry.version);
        open.db.exec("BEGIN");
      } else {
        for (const s of entry.statements) execStatement(open.db, s, entry.version);
      }
      version = entry.version;
      if (++changes % 1000 === 0) options.onProgress?.(version);
    }
    if (version === undefined) throw nothingUpTo(reader, options.toVersion);
    if (options.toVersion !== undefined && version !== options.toVersion) {
      // A backup without a snapshot (a Python plugin's .dbak) starts at its first change.
      const from = snapshotVersion === undefined
        ? "from its first change"
        : `from its snapshot at version ${snapshotVersion}`;
      throw new Error(
        `Cannot restore backup to version ${options.toVersion}: it holds versions up to ` +
          `${version} (${from}): choose a version up to ${version}, or leave out ` +
          `--to-version to restore the newest`,
      );
    }
    open ??= openForRestore(tmp);
    if (open.db.isTransaction) open.db.exec("COMMIT");
    verify(open.db, version);
    const block = lastBlock(open.db);
    open.db.exec(`PRAGMA journal_mode = ${open.journal === "wal" ? "WAL" : "DELETE"}`);
    open.db.close();
    open = undefined;
    const durable = options.durable ?? true;
    // The claim is an open handle on the same file: its fsync flushes what SQLite wrote.
    if (durable) claim.syncSync();
    atStep("restore-building");
    // The last moment to stop with nothing written: the link below puts the result in place.
    checkInterrupted();
    refuseOldJournal(path);
    // A hard link fails when the target exists, where a rename would replace it.
    try {
      Deno.linkSync(tmp, path);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        throw new Error(
          `Cannot restore backup: a database appeared at "${path}" while this restore ran ` +
            `(another restore, or a process writing there): it was left as it is, and this ` +
            `restore's removed: check which database the node is to use`,
        );
      }
      throw error;
    }
    Deno.removeSync(tmp);
    if (durable) syncDir(dirname(path));
    return { path, version, changes, snapshotVersion, tail, lastBlock: block };
  } catch (error) {
    snapshotFile?.close();
    open?.db.close();
    removeAll(leftovers);
    throw error;
  } finally {
    claim.close();
  }
}

/** Why a restore up to `toVersion` found nothing to apply. */
function nothingUpTo(reader: BackupReader, toVersion: number | undefined): Error {
  const { firstVersion, lastVersion, snapshots, records } = reader.describe();
  if (toVersion === undefined || (records === 0 && snapshots.length === 0)) {
    return new Error("Cannot restore backup: it holds no snapshot and no change yet");
  }
  return new Error(
    `Cannot restore backup to version ${toVersion}: it holds versions ${firstVersion} to ` +
      `${lastVersion}: choose --to-version from ${firstVersion} to ${lastVersion}`,
  );
}

function removeAll(paths: string[]): void {
  for (const path of paths) removeIfExists(path);
}

function verify(db: DatabaseSync, version: number): void {
  const rows = db.prepare("PRAGMA integrity_check").all().map((r) => r.integrity_check);
  if (rows.length !== 1 || rows[0] !== "ok") {
    throw new Error(
      `Cannot restore backup: the result fails SQLite's integrity check (${
        rows.slice(0, 3).join("; ")
      })`,
    );
  }
  const held = dataVersion(db);
  if (held !== version) {
    throw new Error(
      `Cannot restore backup: the result holds data_version ${held} but the backup ends at ` +
        `${version}; the backup is inconsistent: restore from another copy`,
    );
  }
}

/**
 * What a reader says about a tail it left out: it stopped at `version`, and cannot tell a
 * record torn by a crash from a damaged last change.
 */
export function describeTail(tail: Tail, version: number): string {
  return `note: stopped at version ${version}: the ${tail.bytes} bytes after it, at offset ` +
    `${tail.offset} of "${tail.path}", fail their checks: a change torn by a crash (never ` +
    `acknowledged, then version ${version} is the node's) or a damaged change ${version + 1}; ` +
    `if the node's database is at version ${version + 1} or later, the backup is damaged`;
}
