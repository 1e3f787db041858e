import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { checkSealedBackup, checkSealedBase, sealedRecordHeader } from "./sealed_input.ts";
import { DataKey } from "../crypto/data_key.ts";
import { segmentCipher } from "../crypto/record_cipher.ts";
import { encodeRecord, RecordKind } from "../format/record.ts";
import { SEGMENT_HEADER_SIZE, SegmentKind } from "../format/segment.ts";
import { createFileBackup, writeBase } from "../backends/file/create.ts";
import { baseName, logName } from "../format/layout.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { copyEncrypted } from "../backends/file/encrypted_copy.ts";
import { newBackupId } from "../format/segment.ts";

const backupId = new Uint8Array(16).fill(5);

Deno.test("sealedRecordHeader takes a whole sealed record of its kind, and nothing else", async () => {
  const key = await DataKey.generate();
  const cipher = segmentCipher(key, { backupId, kind: SegmentKind.Log, number: 1, firstLog: 0 });
  const sealed = encodeRecord(RecordKind.Change, 4, Uint8Array.of(1, 2, 3), {
    cipher,
    offset: SEGMENT_HEADER_SIZE,
  });
  assertEquals(sealedRecordHeader(sealed, RecordKind.Change).version, 4);
  await assertRejects(
    () => sealedRecordHeader(sealed, RecordKind.Seal),
    /the sealed seal is of kind 1/,
  );
  const plain = encodeRecord(RecordKind.Change, 4, Uint8Array.of(1, 2, 3));
  await assertRejects(() => sealedRecordHeader(plain, RecordKind.Change), /is not sealed/);
  const flipped = sealed.slice();
  flipped[8] ^= 1;
  await assertRejects(() => sealedRecordHeader(flipped, RecordKind.Change), /fails its checksum/);
  await assertRejects(
    () => sealedRecordHeader(sealed.subarray(0, sealed.length - 1), RecordKind.Change),
    /payload checksum/,
  );
});

Deno.test("checkSealedBase takes a whole base of this backup and key, and refuses others", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const key = await DataKey.generate();
    const database = `${dir}/db`;
    Deno.writeFileSync(database, new Uint8Array(3000).fill(7));
    writeBase(dir, { version: 12, path: database }, { backupId, firstLog: 1, key });
    const path = `${dir}/${baseName(12)}`;
    assertEquals(checkSealedBase(path, { backupId, keyId: key.id }).number, 12);
    await assertRejects(
      () => checkSealedBase(path, { backupId: new Uint8Array(16), keyId: key.id }),
      /is of backup 0505.*not of this one/,
    );
    await assertRejects(
      () => checkSealedBase(path, { backupId, keyId: new Uint8Array(8).fill(1) }),
      /not sealed with this backup's key/,
    );
    const bytes = Deno.readFileSync(path);
    Deno.writeFileSync(path, bytes.subarray(0, bytes.length - 10));
    await assertRejects(() => checkSealedBase(path, { backupId, keyId: key.id }), /cut short/);
    // A plain base is refused, as a segment of no key.
    writeBase(dir, { version: 12, path: database }, { backupId, firstLog: 1 });
    await assertRejects(
      () => checkSealedBase(path, { backupId, keyId: key.id }),
      /not sealed with this backup's key/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("checkSealedBackup takes a whole encrypted copy of this backup and key, and no plain or foreign segment", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    // A plain backup with a base and changes over two logs, and two encrypted copies of it.
    const database = `${dir}/db`;
    Deno.writeFileSync(database, new Uint8Array(3000).fill(7));
    createFileBackup(`${dir}/plain`, { version: 2, path: database });
    const writer = FileBackend.open("file:///plain", `${dir}/plain`, { segmentBytes: 200 });
    for (let version = 3; version <= 8; version++) {
      await writer.append({ version, statements: [`UPDATE vars SET intval = ${version}`] });
    }
    writer.close();
    const key = await DataKey.generate();
    const copies = [newBackupId(), newBackupId()].map((id, i) => {
      Deno.mkdirSync(`${dir}/copy${i}`);
      copyEncrypted(`${dir}/plain`, `${dir}/copy${i}`, {
        key,
        backupId: id,
        wrappedKey: new Uint8Array(),
      });
      return { path: `${dir}/copy${i}`, owner: { backupId: id, keyId: key.id } };
    });
    const [copy, other] = copies;
    const description = checkSealedBackup(copy.path, copy.owner);
    assertEquals([description.firstVersion, description.lastVersion], [2, 8]);
    await assertRejects(
      () => checkSealedBackup(copy.path, { ...copy.owner, keyId: new Uint8Array(8).fill(1) }),
      /the encrypted copy's "base-.*" is not sealed with this backup's key/,
    );
    // Another backup's log, a plain log, and a stray file are each refused.
    const log = logName(2);
    const own = Deno.readFileSync(`${copy.path}/${log}`);
    Deno.copyFileSync(`${other.path}/${log}`, `${copy.path}/${log}`);
    await assertRejects(() => checkSealedBackup(copy.path, copy.owner), /"log-.*" is of backup/);
    Deno.copyFileSync(`${dir}/plain/${log}`, `${copy.path}/${log}`);
    await assertRejects(() => checkSealedBackup(copy.path, copy.owner), /"log-.*" is of backup/);
    // The copy's own header over the plain log's records: a mix, refused.
    const plain = Deno.readFileSync(`${dir}/plain/${log}`).subarray(SEGMENT_HEADER_SIZE);
    Deno.writeFileSync(`${copy.path}/${log}`, own.subarray(0, SEGMENT_HEADER_SIZE));
    Deno.writeFileSync(`${copy.path}/${log}`, plain, { append: true });
    await assertRejects(
      () => checkSealedBackup(copy.path, copy.owner),
      /"log-.*": .*a plain record in an encrypted segment/,
    );
    Deno.writeFileSync(`${other.path}/x.tmp`, new Uint8Array(1));
    await assertRejects(() => checkSealedBackup(other.path, other.owner), /not segments/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
