import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { checkServerKey, layOutChange } from "./sealed_layout.ts";
import { DataKey } from "../../crypto/data_key.ts";
import { segmentCipher } from "../../crypto/record_cipher.ts";
import {
  decodeRecordHeader,
  decodeSeal,
  headerFields,
  RECORD_HEADER_SIZE,
  RecordKind,
} from "../../format/record.ts";
import { SEGMENT_HEADER_SIZE, SegmentKind } from "../../format/segment.ts";

const backupId = new Uint8Array(16).fill(3);

/** Opens `record` as the reader would at `offset` of log `log`; `undefined` if it does not. */
function open(key: DataKey, record: Uint8Array, log: number, offset: number) {
  const header = decodeRecordHeader(record)!;
  const cipher = segmentCipher(key, { backupId, kind: SegmentKind.Log, number: log, firstLog: 0 });
  return cipher.open(headerFields(header), offset, record.subarray(RECORD_HEADER_SIZE));
}

Deno.test("layOutChange seals a change for its place, and only that place opens it", async () => {
  const key = await DataKey.generate();
  const place = { backupId, keyId: key.id, log: 2, offset: 500 };
  const change = { version: 8, statements: ["UPDATE vars SET intval = 8"] };
  const { packet, next } = layOutChange(key, place, change, 7);
  assertEquals([packet.log, packet.offset, packet.seal], [2, 500, undefined]);
  assertEquals(next, { ...place, offset: 500 + packet.record.length });
  assertEquals(decodeRecordHeader(packet.record)?.version, 8);
  assert(open(key, packet.record, 2, 500), "it opens where it was laid out");
  assertEquals(open(key, packet.record, 2, 564), undefined, "moved within its log");
  assertEquals(open(key, packet.record, 3, 500), undefined, "copied to another log");
  assertEquals(open(await DataKey.generate(), packet.record, 2, 500), undefined, "another key");
});

Deno.test("layOutChange rolls past the segment size: a seal for the old log, the change atop the next", async () => {
  const key = await DataKey.generate();
  const place = { backupId, keyId: key.id, log: 4, offset: 1000 };
  const change = { version: 9, statements: ["x".repeat(200)] };
  const { packet, next } = layOutChange(key, place, change, 8, 1100);
  assert(packet.seal, "the log is sealed");
  const seal = decodeRecordHeader(packet.seal)!;
  assertEquals([seal.kind, seal.version], [RecordKind.Seal, 8]);
  assertEquals(decodeSeal(open(key, packet.seal, 4, 1000)!), 5);
  assert(open(key, packet.record, 5, SEGMENT_HEADER_SIZE), "the change starts log 5");
  assertEquals(next.log, 5);
  assertEquals(next.offset, SEGMENT_HEADER_SIZE + packet.record.length);
  // An empty log never rolls, however large the change.
  const empty = layOutChange(key, { ...place, offset: SEGMENT_HEADER_SIZE }, change, 8, 100);
  assertEquals(empty.packet.seal, undefined);
});

Deno.test("checkServerKey refuses a plain server backup with a key, an encrypted one without, another key", async () => {
  const key = await DataKey.generate();
  const where = "127.0.0.1:9";
  const encrypted = { backupId, keyId: key.id, log: 1, offset: 64 };
  checkServerKey(encrypted, key, where);
  checkServerKey({ ...encrypted, keyId: undefined }, undefined, where);
  await assertRejects(
    () => checkServerKey({ ...encrypted, keyId: undefined }, key, where),
    /is not encrypted, but backup\.key/,
  );
  await assertRejects(() => checkServerKey(encrypted, undefined, where), /is encrypted, and/);
  await assertRejects(
    async () => checkServerKey(encrypted, await DataKey.generate(), where),
    /is not the key of the backup on 127\.0\.0\.1:9/,
  );
});
