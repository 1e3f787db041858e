/**
 * The tamper suite of encrypted file backups. A backup with a base (snapshot parts and end)
 * and rolled logs (changes and seals) is changed the ways storage an attacker controls can
 * change it, with the CRCs recomputed (a forgery, which CRCs alone cannot catch) or not (an
 * accident), and a restore with the key must refuse it with one line naming where, never
 * apply it: for every record kind, a bit flipped in its header, nonce, ciphertext and tag; a
 * record copied from another segment or to another offset; a segment of another backup, with
 * its header rewritten to pass for this one's; an old log replayed under a newer number; a
 * truncated ciphertext; an unknown codec; a change dropped by a rewind put back in place of
 * the one that replaced it. A torn tail in the live log still reads as torn. Every field of
 * a segment header and of key.json (none of them authenticated by itself) changed, through
 * the CLI's restore and verify: refused in one line, or the same database; and a base's first
 * log moved past a migration's PRAGMA hook, which is bound to the base's records.
 */
import { crc32 } from "node:zlib";
import { existsSync } from "../lib/fs/exists.ts";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { loadFixture } from "./support/fixtures.ts";
import {
  makeEncryptedBackup,
  PASSPHRASE,
  restoredWithKey,
  sealBaseAsBefore,
} from "./support/encrypted.ts";
import { dumpDatabase } from "./support/dump.ts";
import { recordedChanges } from "./support/cli_testing.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import type { DataKey } from "../lib/crypto/data_key.ts";
import { readChain, type Segment } from "../lib/format/chain.ts";
import { decodeRecordHeader, RECORD_HEADER_SIZE, RecordKind } from "../lib/format/record.ts";
import { SEGMENT_HEADER_SIZE } from "../lib/format/segment.ts";
import { bumpStatement } from "./support/statements.ts";
import { BufferedOutput } from "./support/cli_testing.ts";
import { childRows, parentChildDatabase, rebuildParent } from "./support/migration.ts";
import { restore } from "../lib/cli/restore.ts";
import { verify } from "../lib/cli/verify.ts";
import type { Prompt } from "../lib/cli/secrets.ts";
import { compactBackup } from "../lib/compact/compact.ts";
import { restoreBackup } from "../lib/backup/restore.ts";

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

/** A header field of a segment, written as an adversary without the key can: CRC fixed. */
type HeaderEdit = (view: DataView, bytes: Uint8Array) => void;
const u32 = (at: number, value: number): HeaderEdit => (view) => view.setUint32(at, value);
const u64 = (at: number, value: number): HeaderEdit => (view) =>
  view.setBigUint64(at, BigInt(value));
const flip = (at: number): HeaderEdit => (_, bytes) => void (bytes[at] ^= 1);
const unsealed: HeaderEdit = (view, bytes) => {
  view.setUint32(48, 0);
  bytes.fill(0, 52, 60);
};

function editHeader(path: string, edit: HeaderEdit, fixCrc = true): void {
  const bytes = Deno.readFileSync(path);
  const view = new DataView(bytes.buffer);
  edit(view, bytes);
  if (fixCrc) view.setUint32(60, crc32(bytes.subarray(0, 60)));
  Deno.writeFileSync(path, bytes);
}

/** key.json as JSON, edited. */
function editKeyFile(dir: string, edit: (file: Record<string, unknown>) => void): void {
  const path = `${dir}/key.json`;
  const file = JSON.parse(Deno.readTextFileSync(path));
  edit(file);
  Deno.writeTextFileSync(path, JSON.stringify(file));
}
/** Sets key.json's `field` to bytes `from..to` of the base's header, as rewritten. */
const keyFileFromBase = (field: string, from: number, to: number): Tamper["edit"] => (dir, s) => {
  const bytes = Deno.readFileSync(s.base).subarray(from, to);
  editKeyFile(
    dir,
    (file) => file[field] = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
  );
};
type Wrap = Record<string, unknown>;
const passphraseWrap = (file: Record<string, unknown>) => (file.wraps as Wrap[])[0];
const otherHex = (hex: string) => (hex[0] === "0" ? "1" : "0") + hex.slice(1);

interface Tamper {
  what: string;
  /** Changes the backup in `dir`; `segments`: its bases then its logs, as named now. */
  edit: (dir: string, segments: { base: string; log: string; all: string[] }) => void;
  /** The one line a restore and a verify refuse it with; none: it restores the same. */
  refused?: RegExp;
  /** Run without a passphrase (a backup that no longer looks encrypted). */
  noSecret?: boolean;
}

const onBase = (what: string, edit: HeaderEdit, refused: RegExp, fixCrc = true): Tamper => ({
  what: `base: ${what}`,
  edit: (_, s) => editHeader(s.base, edit, fixCrc),
  refused,
});
const onLog = (what: string, edit: HeaderEdit, refused: RegExp): Tamper => ({
  what: `log 2: ${what}`,
  edit: (_, s) => editHeader(s.log, edit),
  refused,
});
const onAll = (what: string, edit: HeaderEdit, refused: RegExp, keyFile?: Tamper["edit"]) => ({
  what: `every segment: ${what}`,
  edit: (dir: string, s: { base: string; log: string; all: string[] }) => {
    for (const path of s.all) editHeader(path, edit);
    keyFile?.(dir, s);
  },
  refused,
});
const onKeyFile = (
  what: string,
  edit: (file: Record<string, unknown>) => void,
  refused?: RegExp,
) => ({
  what: `key.json: ${what}`,
  edit: (dir: string) => editKeyFile(dir, edit),
  refused,
});

const DAMAGED = /the backup is damaged/;
const ANOTHER_BACKUP = /holds the key of another backup/;
const NOT_OPENED = /the passphrase given does not open the backup's key/;
const OUT_OF_RANGE = /segment header fields out of range/;

/** Every field of the segment header (docs/FORMAT.md) and of key.json. */
const TAMPERS: Tamper[] = [
  onBase("magic", flip(3), /missing segment header/),
  onBase("format 2", u32(8, 2), /has format 2, written by a development version/),
  onBase("format 4", u32(8, 4), /has format 4, this cln-backup reads format 3: upgrade/),
  onBase("kind log", u32(12, 1), OUT_OF_RANGE),
  onBase("kind 3", u32(12, 3), /unknown segment kind 3/),
  onBase("number", u64(16, 12), /segment header does not match its name/),
  onBase("backup id", flip(30), /a segment of another backup/),
  onBase("first log 0", u64(40, 0), OUT_OF_RANGE),
  onBase("first log 2", u64(40, 2), DAMAGED),
  onBase("first log past the newest", u64(40, 1000), DAMAGED),
  onBase("flags 0", u32(48, 0), OUT_OF_RANGE),
  onBase("flags 0, no key id", unsealed, /a plain segment in an encrypted backup/),
  onBase("flags 1: first log not bound", u32(48, 1), DAMAGED),
  onBase("flags 7", u32(48, 7), /segment flags 7, which this cln-backup does not know/),
  onBase("key id", flip(55), /a segment encrypted with another key/),
  onBase("CRC alone", flip(61), /segment header checksum mismatch/, false),
  onLog("magic", flip(3), /missing segment header/),
  onLog("format 4", u32(8, 4), /has format 4/),
  onLog("kind base", u32(12, 2), OUT_OF_RANGE),
  onLog("number", u64(16, 3), /segment header does not match its name/),
  onLog("backup id", flip(30), /a segment of another backup/),
  onLog("first log 1", u64(40, 1), OUT_OF_RANGE),
  onLog("flags 0, no key id", unsealed, /a plain segment in an encrypted backup/),
  onLog("flags 3: a log's first log bound", u32(48, 3), OUT_OF_RANGE),
  onLog("flags 7", u32(48, 7), /segment flags 7/),
  onLog("key id", flip(55), /a segment encrypted with another key/),
  onAll("backup id", flip(30), ANOTHER_BACKUP),
  onAll("backup id, and key.json's", flip(30), NOT_OPENED, keyFileFromBase("backup_id", 24, 40)),
  onAll("key id", flip(55), ANOTHER_BACKUP),
  onAll("key id, and key.json's", flip(55), NOT_OPENED, keyFileFromBase("key_id", 52, 60)),
  onAll("flags 0, no key id (a plain backup)", unsealed, /is not encrypted, but a passphrase/),
  {
    ...onAll("flags 0, no key id, no secret given", unsealed, /an encrypted record in a plain/),
    noSecret: true,
  },
  onKeyFile("version", (file) => file.cln_backup_key = 2, /not a cln-backup wrapped key/),
  onKeyFile(
    "backup id",
    (file) => file.backup_id = otherHex(file.backup_id as string),
    ANOTHER_BACKUP,
  ),
  onKeyFile("key id", (file) => file.key_id = otherHex(file.key_id as string), ANOTHER_BACKUP),
  onKeyFile(
    "no wraps",
    (file) => file.wraps = [],
    /no secret given does not open|passphrase given does not open/,
  ),
  onKeyFile("type", (file) => passphraseWrap(file).type = "age", /a wrap whose fields are not/),
  onKeyFile(
    "kdf",
    (file) => passphraseWrap(file).kdf = "argon2",
    /costs this cln-backup does not take/,
  ),
  onKeyFile("log_n", (file) => passphraseWrap(file).log_n = 11, NOT_OPENED),
  onKeyFile("log_n past the limit", (file) => passphraseWrap(file).log_n = 21, /costs/),
  onKeyFile("r", (file) => passphraseWrap(file).r = 16, /costs/),
  onKeyFile("salt", (file) => passphraseWrap(file).salt = btoa("another salt 16b"), NOT_OPENED),
  onKeyFile("sealed", (file) => {
    const wrap = passphraseWrap(file);
    wrap.sealed = `${(wrap.sealed as string)[0] === "A" ? "B" : "A"}${
      (wrap.sealed as string).slice(1)
    }`;
  }, NOT_OPENED),
  onKeyFile(
    "a second passphrase wrap",
    (file) => (file.wraps as Wrap[]).push({ ...passphraseWrap(file) }),
    /more than one passphrase wrap/,
  ),
  onKeyFile(
    "an age wrap added",
    (file) => (file.wraps as Wrap[]).push({ type: "age", recipient: "age1x", sealed: "AAAA" }),
  ),
  onKeyFile("a field added", (file) => file.note = "x"),
  {
    what: "key.json: not JSON",
    edit: (dir) => Deno.writeTextFileSync(`${dir}/key.json`, "{"),
    refused: /is not JSON/,
  },
  {
    what: "key.json: removed",
    edit: (dir) => Deno.removeSync(`${dir}/key.json`),
    refused: /wrapped key .* is missing/,
  },
];

const noTerminal: Prompt = () => Promise.resolve(undefined);

Deno.test("tamper: every field of a segment header and of key.json is refused in one line, or cannot matter", async () => {
  await withBackup(async (dir) => {
    const root = `${dir}/..`;
    const passphraseFile = `${root}/passphrase`;
    Deno.writeTextFileSync(passphraseFile, PASSPHRASE, { mode: 0o600 });
    const chain = readChain(dir);
    const all = [...chain.bases, ...chain.logs].map((s) => s.path);
    const segments = { base: chain.bases[0].path, log: chain.logs[1].path, all };
    const files = ["key.json", ...all.map((path) => path.slice(dir.length + 1))];
    const original = new Map(files.map((name) => [name, Deno.readFileSync(`${dir}/${name}`)]));
    const expected = dumpDatabase(loadFixture("activity").database);
    for (const tamper of TAMPERS) {
      tamper.edit(dir, segments);
      const secret = tamper.noSecret ? [] : ["--passphrase-file", passphraseFile];
      const target = `${root}/restored.sqlite3`;
      const restored = new BufferedOutput();
      const code = await restore([`file://${dir}`, target, ...secret], restored, noTerminal);
      const checked = new BufferedOutput();
      const verified = await verify([`file://${dir}`, ...secret], checked, noTerminal);
      const what = `${tamper.what}: ${restored.transcript} / ${checked.transcript}`;
      if (tamper.refused) {
        assertEquals([code, verified], [1, 1], what);
        assertEquals([restored.stdout, restored.stderr.length], [[], 1], what);
        assertEquals(checked.stderr.length, 1, what);
        assertMatch(restored.stderr[0], tamper.refused, what);
        assertMatch(checked.stderr[0], tamper.refused, what);
        assert(!restored.stderr[0].includes("\n"), what);
        assert(!existsSync(target), what);
      } else {
        assertEquals([code, verified, restored.stderr, checked.stderr], [0, 0, [], []], what);
        assertEquals(dumpDatabase(target), expected, what);
        Deno.removeSync(target);
      }
      for (const [name, bytes] of original) Deno.writeFileSync(`${dir}/${name}`, bytes);
    }
  });
});

/**
 * Runs `fn` on an encrypted backup at `<dir>/backup` of a parent/child database at version 9
 * (`source`, its base); the temporary `dir` is removed after.
 */
async function withParentChildBackup(
  fn: (backup: { dir: string; path: string; source: string; key: DataKey }) => void | Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-tamper-" });
  try {
    const source = `${dir}/source.sqlite3`;
    parentChildDatabase(source, 9);
    const path = `${dir}/backup`;
    const key = await makeEncryptedBackup(path, { version: 9, path: source });
    await fn({ dir, path, source, key });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("an encrypted base sealed before bases bound their first log still restores", async () => {
  await withParentChildBackup(({ dir, path, source, key }) => {
    const base = readChain(path).bases[0];
    assertEquals(base.header.firstLogBound, true);
    sealBaseAsBefore(base.path, key);
    assertEquals(readChain(path).bases[0].header.firstLogBound, undefined);
    const reader = new FileBackupReader(`file://${path}`, path, { key });
    const restored = restoreBackup(reader, `${dir}/restored.sqlite3`);
    assertEquals(dumpDatabase(restored.path), dumpDatabase(source));
  });
});

Deno.test("tamper: a base's first log moved past a migration's PRAGMA hook does not open", async () => {
  await withParentChildBackup(async ({ dir, path, key }) => {
    const writer = FileBackend.open(`file://${path}`, path, { segmentBytes: 1024, key });
    await writer.append({
      version: 10,
      statements: ["INSERT INTO parent VALUES (2)", bumpStatement(9)],
    });
    // Foreign keys off in a hook of its own at version 10, then a rebuild too large for this
    // log: a base at 10 continues in the log that holds the hook.
    await writer.append({ version: 10, statements: ["PRAGMA foreign_keys = OFF;"] });
    // Random, so that zstd cannot shrink it into the log.
    const noise = Array.from(crypto.getRandomValues(new Uint8Array(2048)), (b) => b.toString(16))
      .join("");
    await writer.append({ version: 11, statements: [`SELECT '${noise}'`, ...rebuildParent(10)] });
    compactBackup(`file://${path}`, path, { target: 10, key });
    writer.compacted();
    writer.close();
    const base = readChain(path).bases[0];
    assertEquals(base.header.firstLog, readChain(path).logs[0].number);
    // The next log named instead: the hook is skipped, and no version rule can tell.
    editHeader(base.path, u64(40, base.header.firstLog + 1));
    let children: number | undefined;
    const error = (() => {
      try {
        const reader = new FileBackupReader(`file://${path}`, path, { key });
        children = childRows(restoreBackup(reader, `${dir}/restored.sqlite3`).path);
      } catch (error) {
        return (error as Error).message;
      }
    })();
    assertEquals(children, undefined, "restored with the rebuild cascaded to the children");
    assertMatch(error!, /fails authentication .* at offset 64 of ".*base-0+10\.clnb"/);
  });
});
