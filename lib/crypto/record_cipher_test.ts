import { assert, assertEquals } from "../../tests/support/assert.ts";
import { segmentCipher } from "./record_cipher.ts";
import { DataKey } from "./data_key.ts";
import { SEALED_OVERHEAD } from "../format/record.ts";
import { SegmentKind } from "../format/segment.ts";

const key = await DataKey.generate();
const backupId = new Uint8Array(16).fill(1);
const place = { backupId, kind: SegmentKind.Log, number: 3, firstLog: 0 } as const;
const fields = new Uint8Array(20).fill(9);
const plain = new TextEncoder().encode("INSERT INTO vars VALUES ('x')");

Deno.test("record cipher: seals with a fresh nonce and opens only in the same place", async () => {
  const cipher = segmentCipher(key, place);
  assertEquals(cipher.overhead, SEALED_OVERHEAD);
  const sealed = cipher.seal(fields, 64, plain);
  assertEquals(sealed.length, plain.length + SEALED_OVERHEAD);
  // The same plaintext in the same place seals differently: random nonces, none from the version.
  const again = cipher.seal(fields, 64, plain);
  assert(sealed.subarray(0, 24).some((b, i) => b !== again[i]));
  assertEquals(cipher.open(fields, 64, sealed), plain);
  assertEquals(segmentCipher(key, place).open(fields, 64, sealed), plain);
  // Another offset, header field, segment number, segment kind, backup or key: nothing opens.
  const otherFields = fields.slice();
  otherFields[3] ^= 1;
  assertEquals(cipher.open(otherFields, 64, sealed), undefined);
  assertEquals(cipher.open(fields, 65, sealed), undefined);
  assertEquals(segmentCipher(key, { ...place, number: 4 }).open(fields, 64, sealed), undefined);
  assertEquals(
    segmentCipher(key, { ...place, kind: SegmentKind.Base }).open(fields, 64, sealed),
    undefined,
  );
  // A base's records are bound to the log its changes continue in, when its header says so
  // (every base sealed since); a base sealed before still opens, and neither as the other.
  const base = { ...place, kind: SegmentKind.Base, firstLog: 7, firstLogBound: true };
  const inBase = segmentCipher(key, base).seal(fields, 64, plain);
  assertEquals(segmentCipher(key, base).open(fields, 64, inBase), plain);
  assertEquals(segmentCipher(key, { ...base, firstLog: 8 }).open(fields, 64, inBase), undefined);
  const older = { ...base, firstLogBound: false };
  const inOlder = segmentCipher(key, older).seal(fields, 64, plain);
  assertEquals(segmentCipher(key, { ...older, firstLog: 8 }).open(fields, 64, inOlder), plain);
  assertEquals(segmentCipher(key, base).open(fields, 64, inOlder), undefined);
  assertEquals(segmentCipher(key, older).open(fields, 64, inBase), undefined);
  const otherBackup = { ...place, backupId: new Uint8Array(16).fill(2) };
  assertEquals(segmentCipher(key, otherBackup).open(fields, 64, sealed), undefined);
  assertEquals(segmentCipher(await DataKey.generate(), place).open(fields, 64, sealed), undefined);
  // Any flipped bit of nonce, ciphertext or tag, and a cut, fail.
  for (let at = 0; at < sealed.length; at++) {
    const flipped = sealed.slice();
    flipped[at] ^= 1 << (at % 8);
    assertEquals(cipher.open(fields, 64, flipped), undefined, `byte ${at}`);
  }
  assertEquals(cipher.open(fields, 64, sealed.subarray(0, sealed.length - 1)), undefined);
  assertEquals(cipher.open(fields, 64, sealed.subarray(0, 10)), undefined);
});

Deno.test("data key: its id is stable, 8 bytes, and differs between keys", async () => {
  const bytes = key.bytes.slice();
  assertEquals((await DataKey.from(bytes)).id, key.id);
  assertEquals(key.id.length, 8);
  assert((await DataKey.generate()).id.some((b, i) => b !== key.id[i]));
});
