import { assert, assertEquals } from "../../tests/support/assert.ts";
import { SNAPSHOT_PART_BYTES, writeBase } from "../backends/file/create.ts";
import { baseName } from "../format/layout.ts";
import { newBackupId } from "../format/segment.ts";
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
