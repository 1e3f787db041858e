/**
 * Torn and corrupt backups. One backup is built with every kind of record and segment: a
 * snapshot (a copy of a real node's database, padded to three parts) and the last changes of
 * the recorded activity run in 4 KiB log segments (several sealed, one live). Then:
 *
 * - torn tails: the live segment cut at every byte offset of its last two records (and, as a
 *   power cut can leave it on a file system that grows a file before its data lands, the same
 *   with the rest of the record zeroed): the reader reports the torn bytes, `FileBackend.open`
 *   shows them in its state and `cutTail` cuts them and says so, and the restore equals the
 *   state as of the last whole record;
 * - corruption: one bit flipped in every field of segment headers, in record headers and
 *   payloads of every kind (change, snapshot part, snapshot end), first, middle and last, in
 *   sealed and live segments (their seals too), and runs of zeros (a lost sector) in payloads:
 *   a damaged record is never applied. Opening or restoring fails
 *   with a `CorruptBackupError` naming the file and offset, or, for the last record of the live
 *   segment only, the record is left out as a torn tail (the version check decides).
 *
 * Everything runs in-process; the expected databases come from applying the recorded
 * statements directly with SQLite, not from the restore code.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { splitMessages } from "./support/fake_lightningd.ts";
import { prng } from "./support/prng.ts";
import { loadFixture } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { createFileBackup, SNAPSHOT_PART_BYTES } from "../lib/backends/file/create.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { readLayout } from "../lib/format/layout.ts";
import { RECORD_HEADER_SIZE, RecordKind } from "../lib/format/record.ts";
import { CorruptBackupError, scanSegment } from "../lib/format/segment.ts";

/** Changes stored in log segments: the activity run's last ones. */
const CHANGES = 60;
const SEGMENT_BYTES = 4608;

interface Change {
  version: number;
  statements: string[];
}

interface Record {
  path: string;
  offset: number;
  end: number;
  kind: number;
  version: number;
}

interface Built {
  dir: string;
  url: string;
  backup: string;
  changes: Change[];
  /** Dumps of the expected database by version, for the last three versions. */
  expected: Map<number, string>;
  /** Every record of every segment, in order; segments listed with their records. */
  segments: { path: string; kind: "base" | "log"; records: Record[] }[];
}

function applyChanges(db: DatabaseSync, changes: Change[]): void {
  for (const change of changes) {
    db.exec("BEGIN");
    for (const statement of change.statements) db.exec(statement);
    db.exec("COMMIT");
  }
}

function listRecords(path: string): Record[] {
  const file = Deno.openSync(path, { read: true });
  try {
    const out: Record[] = [];
    const scan = scanSegment(file, path, { decode: false });
    for (let step = scan.next(); !step.done; step = scan.next()) {
      const { offset, header } = step.value;
      out.push({
        path,
        offset,
        end: offset + RECORD_HEADER_SIZE + header.storedLength,
        kind: header.kind,
        version: header.version,
      });
    }
    return out;
  } finally {
    file.close();
  }
}

/**
 * A tmpfs when there is one: the cases below cut and repair files hundreds of times, and what
 * they test does not depend on fsync reaching a disk (it saves seconds of fsyncs).
 */
function memoryTmp(): string | undefined {
  try {
    return Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}

/** Builds the backup and the expected databases. */
function build(): Built {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-torn-", dir: memoryTmp() });
  const writes = splitMessages(loadFixture("activity").raw)
    .filter((m) => m.json.method === "db_write")
    .map((m): Change => ({
      version: m.json.params.data_version,
      statements: m.json.params.writes,
    }));
  const before = writes.slice(0, -CHANGES);
  const changes = writes.slice(-CHANGES);
  const snapshotVersion = before.at(-1)!.version;

  // The snapshot: the node's database at `snapshotVersion`, padded past two snapshot parts
  // with incompressible and compressible bytes.
  const source = `${dir}/source.sqlite3`;
  Deno.copyFileSync(loadFixture("restart").database, source);
  const db = new DatabaseSync(source);
  db.exec("PRAGMA foreign_keys = ON");
  applyChanges(db, before);
  const random = prng(4090);
  const noise = Uint8Array.from({ length: SNAPSHOT_PART_BYTES }, () => random() * 256);
  db.exec("CREATE TABLE pad (b BLOB)");
  db.prepare("INSERT INTO pad VALUES (?)").run(noise);
  db.prepare("INSERT INTO pad VALUES (?)").run("lightning ".repeat(SNAPSHOT_PART_BYTES / 10));
  db.close();

  const backup = `${dir}/backup`;
  const url = `file://${backup}`;
  createFileBackup(backup, { version: snapshotVersion, path: source });
  const backend = FileBackend.open(url, backup, { segmentBytes: SEGMENT_BYTES });
  for (const change of changes) backend.append(change);
  backend.close();

  // The expected states, by applying the statements directly.
  const expected = new Map<number, string>();
  const oracle = `${dir}/oracle.sqlite3`;
  Deno.copyFileSync(source, oracle);
  const odb = new DatabaseSync(oracle);
  odb.exec("PRAGMA foreign_keys = ON");
  applyChanges(odb, changes.slice(0, -3));
  for (const change of changes.slice(-3)) {
    applyChanges(odb, [change]);
    expected.set(change.version, dumpDatabase(oracle));
  }
  // The oracle is right: without the padding it is the recorded node's database.
  odb.exec("DROP TABLE pad");
  odb.close();
  assertEquals(dumpDatabase(oracle), dumpDatabase(loadFixture("activity").database));

  const layout = readLayout(backup);
  const segments = [
    ...layout.bases.map(({ path }) => ({
      path,
      kind: "base" as const,
      records: listRecords(path),
    })),
    ...layout.logs.map(({ path }) => ({ path, kind: "log" as const, records: listRecords(path) })),
  ];
  return { dir, url, backup, changes, expected, segments };
}

/** What a reader yields, snapshot parts summed up. */
function readAll(built: Built): { changes: Change[]; snapshotBytes: number } {
  const changes: Change[] = [];
  let snapshotBytes = 0;
  const reader = new FileBackupReader(built.url, built.backup);
  for (const entry of reader.entries()) {
    if (entry.kind === "snapshot-part") snapshotBytes += entry.bytes.length;
    if (entry.kind === "change") {
      changes.push({ version: entry.version, statements: entry.statements });
    }
  }
  return { changes, snapshotBytes };
}

function restoreDump(built: Built, name: string): string {
  const target = `${built.dir}/${name}.sqlite3`;
  restoreBackup(new FileBackupReader(built.url, built.backup), target);
  try {
    return dumpDatabase(target);
  } finally {
    Deno.removeSync(target);
  }
}

/** Runs `fn` and returns the CorruptBackupError it throws, or `undefined` when it succeeds. */
function corruption(fn: () => unknown): CorruptBackupError | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof CorruptBackupError) return error;
    throw error;
  }
  return undefined;
}

Deno.test("torn tails are cut and corrupt records never applied", async (t) => {
  const built = build();
  try {
    const logs = built.segments.filter((s) => s.kind === "log");
    const base = built.segments.find((s) => s.kind === "base")!;
    const live = logs.at(-1)!;
    const intact = readAll(built);
    const lastVersion = built.changes.at(-1)!.version;
    assertEquals(intact.changes, built.changes);
    // The backup has what the cases below need.
    assert(logs.length >= 3, `only ${logs.length} log segments`);
    assert(live.records.length >= 3, "the live segment needs three records");
    assert(logs.slice(0, -1).some((s) => s.records.length >= 3), "a sealed segment needs three");
    assertEquals(base.records.map((r) => r.kind), [
      RecordKind.SnapshotPart,
      RecordKind.SnapshotPart,
      RecordKind.SnapshotPart,
      RecordKind.SnapshotEnd,
    ]);
    assertEquals(restoreDump(built, "intact"), built.expected.get(lastVersion));

    await t.step(
      "truncated at every byte offset of the live segment's last two records",
      async () => {
        const pristine = Deno.readFileSync(live.path);
        const [second, last] = live.records.slice(-2);
        assertEquals(last.end, pristine.length);
        const restoreAt = new Set([
          second.offset,
          second.offset + 1,
          second.offset + RECORD_HEADER_SIZE - 1,
          second.offset + RECORD_HEADER_SIZE,
          last.offset - 1,
          last.offset,
          last.offset + 7,
          last.offset + RECORD_HEADER_SIZE,
          last.end - 1,
        ]);
        let cuts = 0;
        const started = performance.now();
        try {
          for (const zeroed of [false, true]) {
            for (let cut = second.offset; cut < last.end; cut++) {
              const record = cut < last.offset ? second : last;
              const context = `cut at ${cut}${zeroed ? ", zeroed to the end" : ""}`;
              // Only the record being appended is unsynced: a power cut may leave the file grown
              // to its end with zeros where its data did not land.
              const bytes = new Uint8Array(zeroed ? record.end : cut);
              bytes.set(pristine.subarray(0, cut));
              Deno.writeFileSync(live.path, bytes);
              // (Zeros can be what the record held: then it is whole.)
              const intact = zeroed && pristine.subarray(cut, record.end).every((b) => b === 0);
              const whole = intact ? record.end : record.offset;
              const version = intact ? record.version : record.version - 1;
              // Torn bytes end at the last one that is not zero; zeros alone are no record.
              const tornBytes = bytes.subarray(whole).findLastIndex((b) => b !== 0) + 1;

              // The reader reports the torn tail and yields exactly the whole records (checked
              // by count at every offset; record by record, which decodes the snapshot too, at
              // every 16th).
              const reader = new FileBackupReader(built.url, built.backup);
              const described = reader.describe();
              const kept = built.changes.filter((c) => c.version <= version);
              assertEquals(described.tornBytes, tornBytes, context);
              assertEquals(described.lastVersion, version, context);
              assertEquals(described.records, base.records.length + kept.length, context);
              if (restoreAt.has(cut) || cut % 16 === 0) {
                assertEquals(readAll(built).changes, kept, context);
              }
              if (restoreAt.has(cut) && !zeroed) {
                assertEquals(restoreDump(built, "torn"), built.expected.get(version), context);
              }

              // The writer shows it, cuts it when asked, fsyncs and says so.
              const messages: string[] = [];
              const backend = FileBackend.open(built.url, built.backup, {
                segmentBytes: SEGMENT_BYTES,
              });
              try {
                const state = backend.state();
                assertEquals(state.version, version, context);
                assertEquals(state.tail?.bytes ?? 0, tornBytes, context);
                if (state.tail) messages.push(await backend.cutTail());
                if (tornBytes > 0) {
                  assertEquals(messages.length, 1, context);
                  assertMatch(
                    messages[0],
                    new RegExp(`^cut ${tornBytes} torn bytes at offset ${whole} `),
                  );
                  cuts++;
                } else {
                  assertEquals(messages, [], context);
                }
                // Zeros after the records are left for the writer to append into.
                const size = tornBytes > 0 ? whole : bytes.length;
                assertEquals(Deno.statSync(live.path).size, size, context);
                // ...and the node's resent changes make it whole again.
                if (restoreAt.has(cut)) {
                  for (const change of built.changes.filter((c) => c.version > version)) {
                    backend.append(change);
                  }
                }
              } finally {
                backend.close();
              }
              const after = new FileBackupReader(built.url, built.backup).describe();
              assertEquals(after.tornBytes, 0, context);
              if (restoreAt.has(cut)) {
                assertEquals(Deno.readFileSync(live.path), pristine, context);
                assertEquals(after.lastVersion, lastVersion, context);
              }
            }
          }
        } finally {
          Deno.writeFileSync(live.path, pristine);
        }
        console.log(
          `${2 * (last.end - second.offset)} truncations, ${cuts} torn tails cut, in ` +
            `${Math.round(performance.now() - started)} ms`,
        );
        assert(cuts > last.end - second.offset, `only ${cuts} cuts`);
      },
    );

    await t.step("a flipped bit anywhere is reported, never applied", async () => {
      // `at`: the byte whose bit is flipped; with `run`, that many bytes from it are zeroed.
      const cases: { path: string; at: number; what: string; record?: Record; run?: number }[] = [];
      const sealed = logs.slice(0, -1);
      const middleSealed = sealed.reduce((a, b) => b.records.length > a.records.length ? b : a);
      // Segment headers: magic, format, kind, number, backup id, first log, reserved, CRC.
      for (const segment of [base, logs[0], middleSealed, live]) {
        for (const at of [0, 7, 8, 11, 15, 16, 23, 24, 39, 40, 47, 48, 59, 60, 63]) {
          cases.push({ path: segment.path, at, what: `segment header byte ${at}` });
        }
      }
      // Records: every header field, and the payload's first, middle and last byte.
      const chosen = [
        ...base.records, // three snapshot parts (first, middle, last) and the end
        logs[0].records[0],
        ...[middleSealed.records[1], middleSealed.records.at(-1)!],
        ...sealed.map((s) => s.records.at(-1)!),
        live.records[0],
        live.records[1],
        ...live.records.slice(-2),
      ];
      for (const record of new Set(chosen)) {
        const fields = [0, 3, 4, 5, 6, 7, 8, 15, 16, 19, 20, 23, 24, 27, 28, 31];
        const payload = record.end - record.offset - RECORD_HEADER_SIZE;
        const into = [0, payload >> 1, payload - 1].map((p) => RECORD_HEADER_SIZE + p);
        for (const at of [...fields, ...into]) {
          const where = at < RECORD_HEADER_SIZE ? `header byte ${at}` : `payload byte ${at - 32}`;
          cases.push({ path: record.path, at: record.offset + at, what: where, record });
        }
      }
      // A lost sector: a run of zeros inside a payload, in the middle and at the end.
      for (const record of [middleSealed.records[1], live.records[1], live.records.at(-1)!]) {
        const payload = record.end - record.offset - RECORD_HEADER_SIZE;
        const run = Math.min(64, payload);
        const at = record.offset + RECORD_HEADER_SIZE + ((payload - run) >> 1);
        cases.push({ path: record.path, at, what: `${run} zeroed payload bytes`, record, run });
      }
      const lastRecord = live.records.at(-1)!;
      const pristine = new Map(built.segments.map((s) => [s.path, Deno.readFileSync(s.path)]));
      const random = prng(1);
      let cut = 0;
      let restored = 0;
      for (const [i, { path, at, what, record, run }] of cases.entries()) {
        const bytes = new Uint8Array(pristine.get(path)!);
        if (run === undefined) bytes[at] ^= 1 << Math.floor(random() * 8);
        else bytes.fill(0, at, at + run);
        assert(bytes.some((b, j) => b !== pristine.get(path)![j]), `${what}: nothing changed`);
        Deno.writeFileSync(path, bytes);
        const name = path.slice(path.lastIndexOf("/") + 1);
        const context = `${what}${record ? ` of the record at ${record.offset}` : ""} of ${name}`;
        const offset = record?.offset ?? 0;
        const isLast = record === lastRecord;
        const isBase = path === base.path;
        const named = (error: CorruptBackupError | undefined, by: string) => {
          assert(error, `${context}: ${by} did not notice`);
          assertEquals(error.path, path, `${context}: ${by}: ${error.message}`);
          assertEquals(error.offset, offset, `${context}: ${by}: ${error.message}`);
          assertMatch(error.message, new RegExp(` at offset ${offset} of "`));
        };

        // The reader: a restore stops at the damage (or, for the last record of the live
        // segment, reads it as a torn tail and leaves it out).
        const described = corruption(() =>
          new FileBackupReader(built.url, built.backup).describe()
        );
        let read: { changes: Change[] } | undefined;
        const reading = corruption(() => read = readAll(built));
        if (isLast && reading === undefined) {
          assertEquals(described, undefined, context);
          assertEquals(read!.changes, built.changes.slice(0, -1), context);
        } else {
          named(described, "describe");
          named(reading, "entries");
        }
        // A real restore, now and then: it fails and leaves nothing, or it is the state
        // without the damaged last change.
        if (isLast || i % 12 === 0) {
          const target = `${built.dir}/corrupt.sqlite3`;
          const error = corruption(() =>
            restoreBackup(new FileBackupReader(built.url, built.backup), target)
          );
          if (error) {
            named(error, "restore");
            assertEquals(
              [...Deno.readDirSync(built.dir)].filter((e) => e.name.startsWith("corrupt")),
              [],
            );
          } else {
            assert(isLast, context);
            assertEquals(dumpDatabase(target), built.expected.get(lastRecord.version - 1), context);
            Deno.removeSync(target);
          }
          restored++;
        }

        // The writer: it refuses a damaged log or segment header, or shows a damaged last record as a tail
        // that it cuts when asked (the version check decides); of the snapshot it reads only the
        // newest base's end record (a restore reads the rest).
        const messages: string[] = [];
        let backend: FileBackend | undefined;
        const opening = corruption(() =>
          backend = FileBackend.open(built.url, built.backup, { segmentBytes: SEGMENT_BYTES })
        );
        // (It reads every segment's header, the base's too: they carry the backup's id.)
        const inBaseEnd = isBase && record?.kind === RecordKind.SnapshotEnd;
        const inBaseParts = isBase && record !== undefined && !inBaseEnd;
        if (opening) {
          assert(!inBaseParts, `${context}: ${opening.message}`);
          named(opening, "open");
        } else {
          assert(inBaseParts || isLast, `${context}: open did not notice`);
          const state = backend!.state();
          if (state.tail) messages.push(await backend!.cutTail());
          backend!.close();
          if (isLast) {
            assertEquals(state.version, lastRecord.version - 1, context);
            assertEquals(messages.length, 1, context);
            assertMatch(messages[0], new RegExp(`^cut \\d+ torn bytes at offset ${offset} `));
            cut++;
          } else {
            assertEquals(state.version, lastRecord.version, context);
          }
        }
        Deno.writeFileSync(path, pristine.get(path)!);
      }
      console.log(
        `${cases.length} damaged records and headers: ${cut} cut as a torn last record, the ` +
          `rest refused; ${restored} real restores`,
      );
      assert(cut >= 3, "payload flips in the last record are cut as torn");
      assertEquals(readAll(built).changes, built.changes);
    });
  } finally {
    Deno.removeSync(built.dir, { recursive: true });
  }
});
