import { assertEquals, assertMatch } from "../../../tests/support/assert.ts";
import { DataKey } from "../../crypto/data_key.ts";
import { segmentCipher } from "../../crypto/record_cipher.ts";
import {
  Codec,
  decodeRecordHeader,
  decodeStatements,
  encodeRecord,
  encodeStatements,
  rawPayload,
  RECORD_HEADER_SIZE,
  RecordKind,
} from "../../format/record.ts";
import { SegmentKind } from "../../format/segment.ts";
import { objectCipher, ObjectKind, type ObjectPlace, unsealRecord } from "./object_cipher.ts";

const key = await DataKey.generate();
const backupId = new Uint8Array(16).fill(7);
const place: ObjectPlace = { backupId, kind: ObjectKind.Change, first: 12, second: 0 };
const statements = ["UPDATE vars SET intval = 5 WHERE name = 'data_version'", "x".repeat(3000)];

/** A change record at version 5, sealed for `at` (offset 0). */
function sealedFor(at: ObjectPlace): Uint8Array {
  return encodeRecord(RecordKind.Change, 5, encodeStatements(statements), {
    cipher: objectCipher(key, at),
    offset: 0,
  });
}

/** Why `body` throws (it must). */
function refusal(body: () => unknown): string {
  try {
    body();
  } catch (error) {
    return (error as Error).message;
  }
  return "nothing was refused";
}

function unseal(record: Uint8Array, at: ObjectPlace, offset = 0): Uint8Array {
  const header = decodeRecordHeader(record)!;
  const stored = record.subarray(RECORD_HEADER_SIZE);
  return unsealRecord(header, stored, objectCipher(key, at), offset, "node/change-x");
}

Deno.test("object cipher: a record opens only for the object it was sealed for, framed plain", () => {
  const record = sealedFor(place);
  const plain = unseal(record, place);
  const header = decodeRecordHeader(plain)!;
  // Compressed as before sealing: zstd, now plain; the statements come back whole.
  assertEquals([header.kind, header.codec, header.version], [RecordKind.Change, Codec.Zstd, 5]);
  const payload = rawPayload(header, plain.subarray(RECORD_HEADER_SIZE))!;
  assertEquals(decodeStatements(payload), statements);
  // Another generation, sequence, kind, backup or offset: "fails authentication".
  const others: [ObjectPlace, number][] = [
    [{ ...place, second: 1 }, 0],
    [{ ...place, first: 13 }, 0],
    [{ ...place, kind: ObjectKind.Pack }, 0],
    [{ ...place, backupId: new Uint8Array(16).fill(8) }, 0],
    [place, 64],
  ];
  for (const [other, offset] of others) {
    assertMatch(refusal(() => unseal(record, other, offset)), /a record that fails authentication/);
  }
});

Deno.test("object cipher: a plain record, or one sealed for a file segment, is refused", () => {
  const plain = encodeRecord(RecordKind.Change, 5, encodeStatements(statements));
  assertMatch(refusal(() => unseal(plain, place)), /a plain record in an encrypted backup/);
  // The same numbers as a file backup's log segment: another label, so it does not open.
  const segment = { backupId, kind: SegmentKind.Log, number: 12, firstLog: 0 };
  const inSegment = encodeRecord(RecordKind.Change, 5, encodeStatements(statements), {
    cipher: segmentCipher(key, segment),
    offset: 0,
  });
  assertMatch(refusal(() => unseal(inSegment, place)), /fails authentication/);
});
