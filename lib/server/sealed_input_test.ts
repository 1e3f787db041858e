import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { checkSealedBase, sealedRecordHeader } from "./sealed_input.ts";
import { DataKey } from "../crypto/data_key.ts";
import { segmentCipher } from "../crypto/record_cipher.ts";
import { encodeRecord, RecordKind } from "../format/record.ts";
import { SEGMENT_HEADER_SIZE, SegmentKind } from "../format/segment.ts";
import { writeBase } from "../backends/file/create.ts";
import { baseName } from "../format/layout.ts";

const backupId = new Uint8Array(16).fill(5);

Deno.test("sealedRecordHeader takes a whole sealed record of its kind, and nothing else", async () => {
  const key = await DataKey.generate();
  const cipher = segmentCipher(key, { backupId, kind: SegmentKind.Log, number: 1 });
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
