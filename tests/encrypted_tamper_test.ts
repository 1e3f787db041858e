/**
 * The tamper suite of encrypted file backups. A backup with a base (snapshot parts and end)
 * and rolled logs (changes and seals) is changed the ways storage an attacker controls can
 * change it, with the CRCs recomputed (a forgery, which CRCs alone cannot catch) or not (an
 * accident), and a restore with the key must refuse it with one line naming where, never
 * apply it: for every record kind, a bit flipped in its header, nonce, ciphertext and tag; a
 * record copied from another segment or to another offset; a segment of another backup, with
 * its header rewritten to pass for this one's; an old log replayed under a newer number; a
 * truncated ciphertext; an unknown codec; a change dropped by a rewind put back in place of
 * the one that replaced it. A torn tail in the live log still reads as torn.
 */
import { crc32 } from "node:zlib";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { loadFixture } from "./support/fixtures.ts";
import { makeEncryptedBackup, restoredWithKey } from "./support/encrypted.ts";
import { dumpDatabase } from "./support/dump.ts";
import { recordedChanges } from "./support/cli_testing.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import type { DataKey } from "../lib/crypto/data_key.ts";
import { readChain, type Segment } from "../lib/format/chain.ts";
import { decodeRecordHeader, RECORD_HEADER_SIZE, RecordKind } from "../lib/format/record.ts";
import { SEGMENT_HEADER_SIZE } from "../lib/format/segment.ts";
import { bumpStatement } from "./support/statements.ts";

const fixture = loadFixture("fresh-start");
const changes = recordedChanges(["restart", "activity"]);

/** An encrypted backup: a base at fresh-start's end, then restart and activity in small logs. */
async function build(dir: string): Promise<DataKey> {
  const key = await makeEncryptedBackup(dir, { version: 11, path: fixture.database });
  const backend = FileBackend.open(`file://${dir}`, dir, { key, segmentBytes: 32 * 1024 });
  for (const change of changes) await backend.append(change);
  backend.close();
  return key;
}

interface Located {
  segment: Segment;
  offset: number;
  length: number;
}

/** The records of a segment, by offset, from their headers. */
function recordsOf(segment: Segment): Located[] {
  const bytes = Deno.readFileSync(segment.path);
  const out: Located[] = [];
  for (let at = SEGMENT_HEADER_SIZE; at < bytes.length;) {
    const header = decodeRecordHeader(bytes.subarray(at))!;
    const length = RECORD_HEADER_SIZE + header.storedLength;
    out.push({ segment, offset: at, length });
    at += length;
  }
  return out;
}

function firstOfKind(dir: string, kind: RecordKind): Located {
  const chain = readChain(dir);
  for (const segment of [...chain.bases, ...chain.logs]) {
    const bytes = Deno.readFileSync(segment.path);
    for (const record of recordsOf(segment)) {
      if (bytes[record.offset + 4] === kind) return record;
    }
  }
  throw new Error(`no record of kind ${kind}`);
}

/** Recomputes a record's payload and header CRCs, as a forger would. */
function fixCrcs(bytes: Uint8Array, offset: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset);
  const stored = view.getUint32(16);
  const payload = bytes.subarray(offset + RECORD_HEADER_SIZE, offset + RECORD_HEADER_SIZE + stored);
  view.setUint32(24, crc32(payload));
  view.setUint32(0, crc32(bytes.subarray(offset + 4, offset + RECORD_HEADER_SIZE)));
}

/** Reads every record of the backup with the key, as verify does; the error's message. */
function readAllError(dir: string, key: DataKey): string | undefined {
  try {
    const reader = new FileBackupReader(`file://${dir}`, dir, { key });
    for (const _ of reader.entries()) continue;
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

async function withBackup(fn: (dir: string, key: DataKey) => void | Promise<void>) {
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-tamper-" });
  try {
    const dir = `${root}/backup`;
    const key = await build(dir);
    await fn(dir, key);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

const KINDS = [
  ["snapshot part", RecordKind.SnapshotPart],
  ["snapshot end", RecordKind.SnapshotEnd],
  ["change", RecordKind.Change],
  ["seal", RecordKind.Seal],
] as const;

/** Where in a record to flip a bit: [name, offset in the record (from its start)]. */
function regions(length: number): [string, number][] {
  return [
    ["header (version)", 15],
    ["nonce", RECORD_HEADER_SIZE + 5],
    ["ciphertext", RECORD_HEADER_SIZE + 24 + Math.floor((length - RECORD_HEADER_SIZE - 40) / 2)],
    ["tag", length - 3],
  ];
}

Deno.test("encrypted backup: it restores untouched, and every record kind is sealed", async () => {
  await withBackup((dir, key) => {
    assertEquals(readAllError(dir, key), undefined);
    const expected = dumpDatabase(loadFixture("activity").database);
    assertEquals(restoredWithKey(dir, key, dir), expected);
    for (const [, kind] of KINDS) {
      const record = firstOfKind(dir, kind);
      const codec = Deno.readFileSync(record.segment.path)[record.offset + 5];
      assert(codec === 2 || codec === 3, `kind ${kind}: codec ${codec}`);
    }
  });
});

Deno.test("tamper: a bit flip in any record kind's header, nonce, ciphertext or tag is refused", async () => {
  await withBackup((dir, key) => {
    for (const [name, kind] of KINDS) {
      const record = firstOfKind(dir, kind);
      const original = Deno.readFileSync(record.segment.path);
      for (const [region, at] of regions(record.length)) {
        for (const forged of [true, false]) {
          const bytes = original.slice();
          bytes[record.offset + at] ^= 0x04;
          if (forged) fixCrcs(bytes, record.offset);
          Deno.writeFileSync(record.segment.path, bytes);
          const error = readAllError(dir, key);
          const what = `${name}, ${region}, ${forged ? "CRCs recomputed" : "CRCs left"}`;
          assert(error !== undefined, `${what}: not detected`);
          assertMatch(
            error,
            /^Cannot read backup: .*(at offset \d+ of|at) ".*"; the backup is damaged/,
            what,
          );
          if (forged && region !== "header (version)") {
            assertMatch(error, /fails authentication/, what);
          }
        }
      }
      Deno.writeFileSync(record.segment.path, original);
    }
    assertEquals(readAllError(dir, key), undefined, "restored to the original");
  });
});

Deno.test("tamper: a record copied to another segment or offset does not open", async () => {
  await withBackup((dir, key) => {
    const chain = readChain(dir);
    const [first, second] = chain.logs;
    const source = recordsOf(first)[1];
    const record = Deno.readFileSync(first.path).slice(
      source.offset,
      source.offset + source.length,
    );
    // In the next log, as its first record.
    const originalSecond = Deno.readFileSync(second.path);
    const planted = new Uint8Array(SEGMENT_HEADER_SIZE + record.length);
    planted.set(originalSecond.subarray(0, SEGMENT_HEADER_SIZE));
    planted.set(record, SEGMENT_HEADER_SIZE);
    Deno.writeFileSync(second.path, planted);
    assertMatch(
      readAllError(dir, key)!,
      /fails authentication .* at offset 64 of ".*log-0+2\.clnb"/,
    );
    Deno.writeFileSync(second.path, originalSecond);
    const live = chain.logs.at(-1)!;
    const originalLive = Deno.readFileSync(live.path);
    const liveRecords = recordsOf(live);
    // Appended to the end of the live log: a place it was never sealed for.
    Deno.writeFileSync(live.path, record, { append: true });
    assertMatch(readAllError(dir, key)!, /at offset \d+ of ".*log-.*"; the backup is damaged/);
    Deno.writeFileSync(live.path, originalLive);
    // The live log's last record moved one record earlier (its predecessor dropped).
    const [before, last] = liveRecords.slice(-2);
    const moved = new Uint8Array(before.offset + last.length);
    moved.set(originalLive.subarray(0, before.offset));
    moved.set(originalLive.subarray(last.offset, last.offset + last.length), before.offset);
    Deno.writeFileSync(live.path, moved);
    assert(readAllError(dir, key) !== undefined, "a record moved back is refused");
    Deno.writeFileSync(live.path, originalLive);
    assertEquals(readAllError(dir, key), undefined);
  });
});

Deno.test("tamper: a segment of another backup, its header rewritten, and an old log replayed", async () => {
  await withBackup(async (dir, key) => {
    const other = `${dir}-other`;
    await build(other);
    const log = readChain(dir).logs[1];
    const original = Deno.readFileSync(log.path);
    const beforeSeal = recordsOf(log).at(-2)!.offset;
    // Copied in as it is: another backup's id and key id, named as such.
    Deno.copyFileSync(readChain(other).logs[1].path, log.path);
    assertMatch(readAllError(dir, key)!, /a segment of another backup/);
    // Its header rewritten to this backup's (id, key id, CRC): its records do not open.
    const foreign = Deno.readFileSync(log.path);
    foreign.set(original.subarray(0, SEGMENT_HEADER_SIZE));
    Deno.writeFileSync(log.path, foreign);
    assertMatch(readAllError(dir, key)!, /fails authentication/);
    // This backup's own log 1 replayed as log 2 (its header's number rewritten, CRC fixed).
    const first = Deno.readFileSync(readChain(dir).logs[0].path);
    const replayed = first.slice();
    replayed.set(original.subarray(0, SEGMENT_HEADER_SIZE));
    Deno.writeFileSync(log.path, replayed);
    assertMatch(readAllError(dir, key)!, /fails authentication/);
    // An older state of log 2 (a prefix, before it was sealed): the chain misses its seal.
    Deno.writeFileSync(log.path, original.subarray(0, beforeSeal));
    assertMatch(readAllError(dir, key)!, /which has no seal/);
    Deno.writeFileSync(log.path, original);
    assertEquals(readAllError(dir, key), undefined);
    Deno.removeSync(other, { recursive: true });
  });
});

Deno.test("tamper: a truncated ciphertext and an unknown codec are refused; a torn tail is torn", async () => {
  await withBackup((dir, key) => {
    const live = readChain(dir).logs.at(-1)!;
    const original = Deno.readFileSync(live.path);
    const last = recordsOf(live).at(-1)!;
    // The last change's ciphertext one byte short, its length and CRCs made to match.
    const cut = original.slice(0, original.length - 1);
    const view = new DataView(cut.buffer, last.offset);
    view.setUint32(16, view.getUint32(16) - 1);
    fixCrcs(cut, last.offset);
    Deno.writeFileSync(live.path, cut);
    assertMatch(readAllError(dir, key)!, /fails authentication/);
    // An unknown codec, CRCs fixed: named, with what to do.
    const unknown = original.slice();
    unknown[last.offset + 5] = 9;
    fixCrcs(unknown, last.offset);
    Deno.writeFileSync(live.path, unknown);
    assertMatch(
      readAllError(dir, key)!,
      /^Cannot read backup: record stored with codec 9, which this cln-backup does not know, at offset \d+ of ".*": upgrade cln-backup$/,
    );
    // A crash mid-append: half the last record. Read as a torn tail, not damage.
    Deno.writeFileSync(live.path, original.subarray(0, last.offset + (last.length >> 1)));
    assertEquals(readAllError(dir, key), undefined);
    const reader = new FileBackupReader(`file://${dir}`, dir, { key });
    assertEquals(reader.describe().tail?.offset, last.offset);
    const backend = FileBackend.open(`file://${dir}`, dir, { key });
    assertEquals(backend.state().tail?.offset, last.offset);
    backend.close();
    // A sealed log cut the same way is damage, not a tail.
    const sealed = readChain(dir).logs[0];
    const sealedBytes = Deno.readFileSync(sealed.path);
    Deno.writeFileSync(sealed.path, sealedBytes.subarray(0, sealedBytes.length - 10));
    assertMatch(readAllError(dir, key)!, /the backup is damaged/);
  });
});

Deno.test("tamper: a change a rewind dropped, kept by the storage, does not open in its successor's place", async () => {
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-tamper-" });
  try {
    const dir = `${root}/backup`;
    const key = await makeEncryptedBackup(dir);
    const backend = FileBackend.open(`file://${dir}`, dir, { key });
    const insert = (version: number, value: string) => ({
      version,
      statements: [`INSERT INTO t VALUES ('${value}')`, bumpStatement(version - 1)],
    });
    await backend.append({
      version: 1,
      statements: [
        "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name))",
        "INSERT INTO vars (name, intval) VALUES ('data_version', 0)",
        "CREATE TABLE t (x TEXT)",
        bumpStatement(0),
      ],
    });
    await backend.append(insert(2, "two"));
    // Change 3 as stored, then dropped by a rewind (the node never committed it): whoever
    // holds the storage saw it, and keeps its bytes and the file they were in.
    await backend.append(insert(3, "dropped"));
    const logs = () => readChain(dir).logs.map((log) => log.path);
    const dropped = new Map(logs().map((path) => [path, Deno.readFileSync(path)]));
    await backend.rewind();
    // The change the node did commit, as long as the dropped one, and one after it.
    await backend.append(insert(3, "kept!!!"));
    await backend.append(insert(4, "four"));
    backend.close();
    const good = restoredWithKey(dir, key, root);
    // Every record the storage saw, put back over what replaced it at its place.
    for (const [path, bytes] of dropped) {
      const now = Deno.readFileSync(path);
      const spliced = now.slice();
      // Its records, not the zeros written ahead of them.
      let end = SEGMENT_HEADER_SIZE;
      for (let header; (header = decodeRecordHeader(bytes.subarray(end)));) {
        end += RECORD_HEADER_SIZE + header.storedLength;
      }
      spliced.set(
        bytes.subarray(SEGMENT_HEADER_SIZE, Math.min(end, now.length)),
        SEGMENT_HEADER_SIZE,
      );
      Deno.writeFileSync(path, spliced);
      assertMatch(
        readAllError(dir, key) ?? "restored",
        /^Cannot read backup: .* at offset \d+ of ".*log-0+1\.clnb"; the backup is damaged/,
      );
      Deno.writeFileSync(path, now);
    }
    assertEquals(restoredWithKey(dir, key, root), good);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
