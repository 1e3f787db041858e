/**
 * The data of the restore rows, generated once per run into the run's temporary directory:
 * a database of about 100 MB (the activity fixture's database, filled with invoices and
 * datastore entries), file backups holding its snapshot and the first N changes of one
 * {@linkcode Workload} for each N asked for, and the same changes as a Python plugin v1
 * record stream (9-byte header + NUL-joined statements) for the SQLite floor to replay.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { writeAll } from "../lib/fs/durable.ts";
import { createEmptyLog } from "../lib/backends/file/writer.ts";
import { readChain } from "../lib/format/chain.ts";
import { baseName, logName } from "../lib/format/layout.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../lib/format/record.ts";
import { loadFixture } from "../tests/support/fixtures.ts";
import { Workload } from "./workload.ts";

/** Collects small writes into large ones. */
class BufferedFile {
  #file: Deno.FsFile;
  #chunks: Uint8Array[] = [];
  #held = 0;
  bytes = 0;

  constructor(path: string, options: Deno.OpenOptions) {
    this.#file = Deno.openSync(path, options);
  }

  add(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#held += bytes.length;
    this.bytes += bytes.length;
    if (this.#held >= 4 << 20) this.flush();
  }

  flush(): void {
    if (this.#held === 0) return;
    const joined = new Uint8Array(this.#held);
    let at = 0;
    for (const chunk of this.#chunks) {
      joined.set(chunk, at);
      at += chunk.length;
    }
    writeAll(this.#file, joined);
    this.#chunks = [];
    this.#held = 0;
  }

  /** Flushes, syncs (so that later timings do not pay for this write-back) and closes. */
  close(): void {
    this.flush();
    this.#file.syncSync();
    this.#file.close();
  }
}

/**
 * Copies the activity fixture's database to `path` and fills it to about `targetBytes` with
 * invoices and datastore entries; returns its `data_version`.
 */
export function buildSnapshot(path: string, targetBytes: number): number {
  Deno.copyFileSync(loadFixture("activity").database, path);
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;");
    const size = () => {
      const pages = Number(db.prepare("PRAGMA page_count").get()?.page_count);
      return pages * Number(db.prepare("PRAGMA page_size").get()?.page_size);
    };
    const batch = 4_000;
    for (let start = 1_000; size() < targetBytes; start += batch) {
      db.exec("BEGIN");
      db.exec(`
        WITH RECURSIVE c(i) AS (SELECT ${start} UNION ALL SELECT i + 1 FROM c
          WHERE i < ${start + batch - 1})
        INSERT INTO invoices (id, state, msatoshi, payment_hash, payment_key, label,
          expiry_time, bolt11, description, features)
        SELECT i, 1, i * 1000, randomblob(32), randomblob(32), 'fill-inv-' || i, 1796279034,
          'lnbcrt10n1p' || lower(hex(randomblob(170))), 'fill invoice ' || i,
          x'02000002024100' FROM c;`);
      db.exec(`
        WITH RECURSIVE c(i) AS (SELECT ${start} UNION ALL SELECT i + 1 FROM c
          WHERE i < ${start + batch / 2 - 1})
        INSERT INTO datastore SELECT CAST('fill-' || i AS BLOB),
          randomblob(200 + abs(random()) % 2800), 0 FROM c;`);
      db.exec("COMMIT");
    }
    const row = db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get();
    return Number(row?.intval);
  } finally {
    db.close();
  }
}

export interface RestoreData {
  snapshot: string;
  snapshotBytes: number;
  snapshotVersion: number;
  /** Bytes of the backup's base segment (the stored snapshot). */
  baseBytes: number;
  /** Backup directory per change count. */
  backups: Map<number, string>;
  /** Bytes on disk of the log segment (the changes) per change count. */
  logBytes: Map<number, number>;
  /** The largest count's changes as v1 records. */
  statements: string;
  /** Bytes of those v1 records. */
  v1Bytes: number;
  changes: number;
}

function v1Header(payloadLength: number, version: number): Uint8Array {
  const out = new Uint8Array(9);
  const view = new DataView(out.buffer);
  view.setUint32(0, payloadLength);
  view.setUint32(4, version);
  view.setUint8(8, 1);
  return out;
}

/**
 * Writes the snapshot and the backups of `counts` changes into `dir`. The records are the
 * bytes {@linkcode FileBackend.append} writes, but written in bulk, without an fdatasync
 * each (100,000 of those would take half a minute and measure nothing here).
 */
export function buildRestoreData(
  dir: string,
  snapshotBytes: number,
  counts: number[],
  log: (message: string) => void,
): RestoreData {
  Deno.mkdirSync(dir, { recursive: true });
  const snapshot = `${dir}/snapshot.sqlite3`;
  const snapshotVersion = buildSnapshot(snapshot, snapshotBytes);
  const size = Deno.statSync(snapshot).size;
  log(`restore: snapshot of ${(size / 1e6).toFixed(0)} MB at version ${snapshotVersion}`);
  const changes = Math.max(...counts);
  const backups = new Map<number, string>();
  const logs = new Map<number, BufferedFile>();
  let base: string | undefined;
  for (const count of counts) {
    const path = `${dir}/backup-${count}`;
    if (base === undefined) {
      createFileBackup(path, { version: snapshotVersion, path: snapshot });
      base = `${path}/${baseName(snapshotVersion)}`;
    } else {
      // The same snapshot: share the first backup's base segment instead of writing it again.
      Deno.mkdirSync(path);
      Deno.linkSync(base, `${path}/${baseName(snapshotVersion)}`);
      createEmptyLog(path, readChain(backups.values().next().value!).backupId);
    }
    backups.set(count, path);
    logs.set(count, new BufferedFile(`${path}/${logName(1)}`, { write: true, append: true }));
  }
  const statements = `${dir}/statements.v1`;
  const raw = new BufferedFile(statements, { write: true, create: true, truncate: true });
  const workload = new Workload({
    seed: 2,
    bigEvery: 7,
    fromVersion: snapshotVersion,
    firstKey: 1_000_000,
  });
  for (let i = 0; i < changes; i++) {
    const tx = workload.next();
    const payload = encodeStatements(tx.writes);
    const record = encodeRecord(RecordKind.Change, tx.version, payload);
    for (const [count, file] of logs) if (i < count) file.add(record);
    raw.add(v1Header(payload.length, tx.version));
    raw.add(payload);
  }
  const logBytes = new Map<number, number>();
  for (const [count, file] of logs) {
    file.close();
    logBytes.set(count, Deno.statSync(`${backups.get(count)}/${logName(1)}`).size);
  }
  raw.close();
  return {
    snapshot,
    snapshotBytes: size,
    baseBytes: Deno.statSync(base!).size,
    snapshotVersion,
    backups,
    logBytes,
    statements,
    v1Bytes: raw.bytes,
    changes,
  };
}
