import { assert, assertEquals } from "../../tests/support/assert.ts";
import { SNAPSHOT_PART_BYTES, writeBase } from "../backends/file/create.ts";
import { baseName } from "../format/layout.ts";
import { isSealed, RecordKind } from "../format/record.ts";
import {
  decodeSegmentHeader,
  newBackupId,
  readAt,
  scanSegment,
  SEGMENT_HEADER_SIZE,
} from "../format/segment.ts";
import { DataKey } from "../crypto/data_key.ts";
import { segmentCipher } from "../crypto/record_cipher.ts";
import { moveIntoBase } from "./move_into_base.ts";
import { Pacer } from "./pacer.ts";

/** Parts that compress and parts that do not, and a short last one. */
function database(): Uint8Array {
  const bytes = new Uint8Array(3 * SNAPSHOT_PART_BYTES + 12_345);
  for (let at = SNAPSHOT_PART_BYTES; at < 2 * SNAPSHOT_PART_BYTES; at += 65_536) {
    crypto.getRandomValues(bytes.subarray(at, at + 65_536));
  }
  bytes.fill(7, 0, SNAPSHOT_PART_BYTES >> 1);
  return bytes;
}

Deno.test("moveIntoBase writes the base writeBase writes, and leaves the database empty", () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-move-" });
  try {
    const bytes = database();
    const place = { backupId: newBackupId(), firstLog: 3 };
    Deno.mkdirSync(`${dir}/copied`);
    Deno.mkdirSync(`${dir}/moved`);
    Deno.writeFileSync(`${dir}/copy.sqlite3`, bytes);
    writeBase(`${dir}/copied`, { version: 42, path: `${dir}/copy.sqlite3` }, place);
    Deno.writeFileSync(`${dir}/scratch.sqlite3`, bytes);
    let syncs = 0;
    moveIntoBase(`${dir}/moved`, `${dir}/scratch.sqlite3`, 42, place, new Pacer(1, () => syncs++));
    const name = baseName(42);
    assertEquals(
      Deno.readFileSync(`${dir}/moved/${name}`),
      Deno.readFileSync(`${dir}/copied/${name}`),
    );
    assertEquals(Deno.statSync(`${dir}/scratch.sqlite3`).size, 0);
    assertEquals([...Deno.readDirSync(`${dir}/moved`)].map((e) => e.name), [name]);
    assert(syncs === 4, `synced after each of the 4 parts, not ${syncs} times`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("moveIntoBase seals each part where it lands in an encrypted backup", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-move-" });
  try {
    const bytes = database();
    const key = await DataKey.generate();
    const place = { backupId: newBackupId(), firstLog: 3, key };
    Deno.writeFileSync(`${dir}/scratch.sqlite3`, bytes);
    moveIntoBase(dir, `${dir}/scratch.sqlite3`, 42, place, new Pacer(1, () => {}));
    const path = `${dir}/${baseName(42)}`;
    const file = Deno.openSync(path);
    const header = decodeSegmentHeader(readAt(file, 0, SEGMENT_HEADER_SIZE), path);
    assertEquals(header.keyId, key.id);
    const cipher = segmentCipher(key, header);
    const kinds: number[] = [];
    const parts: Uint8Array[] = [];
    for (const record of scanSegment(file, path, { decode: true, sealed: true, cipher })) {
      assert(isSealed(record.header.codec), "every record is sealed");
      kinds.push(record.header.kind);
      if (record.header.kind === RecordKind.SnapshotPart) parts.push(record.payload!);
    }
    file.close();
    assertEquals(kinds.length, 5, "four parts and the end");
    assertEquals(kinds.at(-1), RecordKind.SnapshotEnd);
    const joined = new Uint8Array(bytes.length);
    let at = 0;
    for (const part of parts) joined.set(part, (at += part.length) - part.length);
    assertEquals(joined, bytes);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("moveIntoBase writes nothing through a symlink left at its temporary name", () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-move-" });
  try {
    // The backup directory is the plugin's user's; compact may run as root beside it.
    Deno.mkdirSync(`${dir}/backup`);
    Deno.writeTextFileSync(`${dir}/shadow`, "root:x:0:0");
    Deno.symlinkSync(`${dir}/shadow`, `${dir}/backup/${baseName(42)}.tmp`);
    Deno.writeFileSync(`${dir}/scratch.sqlite3`, database());
    const place = { backupId: newBackupId(), firstLog: 3 };
    moveIntoBase(`${dir}/backup`, `${dir}/scratch.sqlite3`, 42, place, new Pacer(1, () => {}));
    assertEquals(Deno.readTextFileSync(`${dir}/shadow`), "root:x:0:0");
    assert(Deno.lstatSync(`${dir}/backup/${baseName(42)}`).isFile, "the base is a file of its own");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
