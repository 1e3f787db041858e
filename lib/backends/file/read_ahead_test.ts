import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { crc32 } from "node:zlib";
import type { BackupEntry } from "../backend.ts";
import { CorruptBackupError } from "../../format/segment.ts";
import { logName } from "../../format/layout.ts";
import { createFileBackup } from "./create.ts";
import { FileBackupReader } from "./reader.ts";
import { FileBackend } from "./writer.ts";
import { DataKey } from "../../crypto/data_key.ts";
import { makeEncryptedBackup } from "../../../tests/support/encrypted.ts";

/**
 * A backup with a snapshot of three parts, changes (one larger than the 8 MiB ring) and a
 * torn tail; sealed with `key` when one is given.
 */
async function backupWithTail(
  key?: DataKey,
): Promise<{ dir: string; url: string; path: string }> {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup`;
  const db = `${dir}/db.sqlite3`;
  // A quarter random, so that the parts are stored compressed.
  const snapshot = new Uint8Array(2.5 * 2 ** 20);
  for (let at = 0; at < snapshot.length; at += 65_536) {
    crypto.getRandomValues(snapshot.subarray(at, at + 16_384));
  }
  Deno.writeFileSync(db, snapshot);
  if (key) await makeEncryptedBackup(path, { version: 7, path: db }, [], key);
  else createFileBackup(path, { version: 7, path: db });
  const url = `file://${path}`;
  const backend = FileBackend.open(url, path, { key });
  const hex = (bytes: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16)).join("");
  const big = Array.from({ length: 200 }, () => hex(65_536)).join("");
  for (let version = 8; version < 40; version++) {
    const statements = version === 20 ? [`SELECT '${big}'`] : [`SELECT ${version}`, "x\u00e9"];
    await backend.append({ version, statements });
  }
  backend.close();
  const log = Deno.openSync(`${path}/${logName(1)}`, { write: true, append: true });
  log.writeSync(new Uint8Array([1, 2, 3]));
  log.close();
  return { dir, url, path };
}

/** Every entry; a snapshot part's bytes, which hold until the next entry, copied as read. */
const read = (reader: FileBackupReader, toVersion?: number) =>
  Array.from(
    reader.entries(toVersion),
    (e) => e.kind === "snapshot-part" ? { ...e, bytes: e.bytes.slice() } : e,
  );

Deno.test("read-ahead: a worker reads the same entries as the reader alone", async () => {
  const { dir, url, path } = await backupWithTail();
  const alone = read(new FileBackupReader(url, path, { readAheadFrom: Infinity }));
  const ahead = read(new FileBackupReader(url, path, { readAheadFrom: 0 }));
  assertEquals(ahead.length, 3 + 1 + 32 + 1, "3 parts, the end, 32 changes, the tail");
  assertEquals(ahead, alone);
  const big = ahead.find((e) => e.kind === "change" && e.version === 20) as BackupEntry & {
    kind: "change";
  };
  assert(big.statements[0].length > 8 << 20, "the big change went through the ring whole");
  assertEquals(
    read(new FileBackupReader(url, path, { readAheadFrom: 0 }), 12),
    read(new FileBackupReader(url, path, { readAheadFrom: Infinity }), 12),
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("read-ahead: the worker opens an encrypted backup with the reader's key", async () => {
  const key = await DataKey.generate();
  const { dir, url, path } = await backupWithTail(key);
  const alone = read(new FileBackupReader(url, path, { key, readAheadFrom: Infinity }));
  const ahead = read(new FileBackupReader(url, path, { key, readAheadFrom: 0 }));
  assertEquals(ahead.length, 3 + 1 + 32 + 1, "3 parts, the end, 32 changes, the tail");
  assertEquals(ahead, alone);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("read-ahead: the snapshot's parts pass through one buffer, not one each", async () => {
  const { dir, url, path } = await backupWithTail();
  // Read ahead (through the channel) and alone (decoded in this thread).
  for (const readAheadFrom of [0, Infinity]) {
    const parts: Uint8Array[] = [];
    for (const entry of new FileBackupReader(url, path, { readAheadFrom }).entries()) {
      if (entry.kind === "snapshot-part") parts.push(entry.bytes);
    }
    assertEquals(parts.map((p) => p.length), [2 ** 20, 2 ** 20, 2 ** 19]);
    assert(parts.every((p) => p.buffer === parts[0].buffer), `a buffer a part (${readAheadFrom})`);
  }
  Deno.removeSync(dir, { recursive: true });
});

/** The errors of reading the damaged backup alone and ahead: both must be corruption. */
async function damageSeen(
  url: string,
  path: string,
): Promise<{ alone: CorruptBackupError; ahead: CorruptBackupError }> {
  const alone = await assertRejects(() =>
    read(new FileBackupReader(url, path, { readAheadFrom: Infinity }))
  );
  const ahead = await assertRejects(() =>
    read(new FileBackupReader(url, path, { readAheadFrom: 0 }))
  );
  assert(alone instanceof CorruptBackupError && ahead instanceof CorruptBackupError);
  return { alone, ahead };
}

Deno.test("read-ahead: damage is the same CorruptBackupError as read alone", async () => {
  const { dir, url, path } = await backupWithTail();
  const file = Deno.openSync(`${path}/${logName(1)}`, { read: true, write: true });
  file.seekSync(200, Deno.SeekMode.Start);
  file.writeSync(new Uint8Array([0xff, 0xee]));
  file.close();
  const { alone, ahead } = await damageSeen(url, path);
  assertEquals(ahead.message, alone.message);
  assertEquals([ahead.path, ahead.offset], [alone.path, alone.offset]);
  assertEquals(ahead.offset! < 300, true, "the damaged record, near the log's start");
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("read-ahead: a caller that stops early stops the worker", async () => {
  const { dir, url, path } = await backupWithTail();
  const reader = new FileBackupReader(url, path, { readAheadFrom: 0 });
  for (const entry of reader.entries()) if (entry.kind === "change") break;
  // The test's sanitizers fail it if the worker or a file were left open.
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("read-ahead: a checksummed frame that does not decode is named as read alone", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/backup`;
    const url = `file://${path}`;
    createFileBackup(path);
    const backend = FileBackend.open(url, path);
    // Compressed (512 bytes or more), then a raw one after it.
    await backend.append({ version: 1, statements: [`SELECT '${"ab".repeat(4096)}'`] });
    await backend.append({ version: 2, statements: ["SELECT 2"] });
    backend.close();
    // The first record's zstd magic broken, its checksums made to match.
    const file = Deno.openSync(`${path}/${logName(1)}`, { read: true, write: true });
    const header = new Uint8Array(32);
    file.seekSync(64, Deno.SeekMode.Start);
    file.readSync(header);
    const view = new DataView(header.buffer);
    assertEquals(header[5], 1, "the first record is zstd");
    const stored = new Uint8Array(view.getUint32(16));
    file.readSync(stored);
    stored[0] ^= 0xff;
    view.setUint32(24, crc32(stored));
    view.setUint32(0, crc32(header.subarray(4)));
    file.seekSync(64, Deno.SeekMode.Start);
    file.writeSync(header);
    file.writeSync(stored);
    file.close();
    const { alone, ahead } = await damageSeen(url, path);
    assertEquals([ahead.message, ahead.path, ahead.offset], [alone.message, alone.path, 64]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
