/**
 * One restore measurement in a process of its own, so that its peak memory (VmHWM) is the
 * restore's alone. Prints one JSON line.
 *
 *     restore_child.ts restore <backup-url> <target>
 *     restore_child.ts floor <snapshot> <v1-records> <target>
 *     restore_child.ts compact <backup-dir>
 *
 * `floor` is what SQLite itself needs: copy the snapshot file, then execute the same
 * statements, already in memory, in one transaction with the PRAGMAs restore uses. It then
 * times, apart, the two steps restore adds to that: `PRAGMA integrity_check` and the fsync.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { DataKey, fromHex } from "../lib/crypto/data_key.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { compactBackup } from "../lib/compact/compact.ts";
import { procStatusKiB } from "./plugin_driver.ts";

export interface ChildResult {
  /** Wall time of the measured work, ms. */
  ms: number;
  /** Peak resident memory of the process, KiB. */
  vmHwmKiB: number;
  changes: number;
  /** floor only: the parts of `ms` and what restore does beyond it. */
  copyMs?: number;
  execMs?: number;
  integrityCheckMs?: number;
  fsyncMs?: number;
}

/** Reads v1 records (u32 length, u32 version, u8 type, NUL-joined statements) into memory. */
function readV1Records(path: string): string[][] {
  const bytes = Deno.readFileSync(path);
  const view = new DataView(bytes.buffer);
  const decoder = new TextDecoder();
  const changes: string[][] = [];
  for (let at = 0; at < bytes.length;) {
    const length = view.getUint32(at);
    changes.push(decoder.decode(bytes.subarray(at + 9, at + 9 + length)).split("\0"));
    at += 9 + length;
  }
  return changes;
}

function floor(snapshot: string, records: string, target: string): ChildResult {
  const changes = readV1Records(records);
  const start = performance.now();
  Deno.copyFileSync(snapshot, target);
  const copied = performance.now();
  const db = new DatabaseSync(target);
  db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON;");
  db.exec("BEGIN");
  for (const statements of changes) {
    for (const statement of statements) db.exec(statement);
  }
  db.exec("COMMIT");
  db.close();
  const done = performance.now();
  const result: ChildResult = {
    ms: done - start,
    vmHwmKiB: procStatusKiB("/proc/self/status", "VmHWM"),
    changes: changes.length,
    copyMs: copied - start,
    execMs: done - copied,
  };
  const check = new DatabaseSync(target);
  const checkStart = performance.now();
  const rows = check.prepare("PRAGMA integrity_check").all();
  result.integrityCheckMs = performance.now() - checkStart;
  check.close();
  if (rows.length !== 1 || rows[0].integrity_check !== "ok") {
    throw new Error(`floor result fails integrity_check: ${JSON.stringify(rows.slice(0, 3))}`);
  }
  const file = Deno.openSync(target, { read: true, write: true });
  const syncStart = performance.now();
  file.syncSync();
  result.fsyncMs = performance.now() - syncStart;
  file.close();
  return result;
}

/** Restores `url` (an encrypted file backup when `keyHex` is given, with that key). */
async function restore(url: string, target: string, keyHex?: string): Promise<ChildResult> {
  const reader = keyHex
    ? new FileBackupReader(url, new URL(url).pathname, {
      key: await DataKey.from(fromHex(keyHex, 32)!),
    })
    : openReader(url);
  const start = performance.now();
  const result = restoreBackup(reader, target);
  const ms = performance.now() - start;
  reader.close();
  return {
    ms,
    vmHwmKiB: procStatusKiB("/proc/self/status", "VmHWM"),
    changes: result.changes,
  };
}

/** Compacts as the plugin would: everything but the newest change folds into a new base. */
function compact(dir: string): ChildResult {
  const url = `file://${dir}`;
  const target = openReader(url).describe().lastVersion - 1;
  const start = performance.now();
  const result = compactBackup(url, dir, { target });
  return {
    ms: performance.now() - start,
    vmHwmKiB: procStatusKiB("/proc/self/status", "VmHWM"),
    changes: result.versions_folded,
  };
}

if (import.meta.main) {
  const [mode, ...args] = Deno.args;
  const result = mode === "floor"
    ? floor(args[0], args[1], args[2])
    : mode === "restore"
    ? await restore(args[0], args[1], args[2])
    : mode === "compact"
    ? compact(args[0])
    : undefined;
  if (!result) throw new Error(`usage: restore_child.ts restore|floor|compact ...`);
  console.log(JSON.stringify(result));
}
