import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { PRE_4090_BACKUP } from "../../../tests/support/fixtures.ts";
import { V1BackupReader } from "./reader.ts";
import { CorruptBackupError } from "../../format/segment.ts";
import { MAX_STATEMENTS } from "../../format/record.ts";
import { encodeV1Header, encodeV1Record, V1_HEADER_SIZE, V1Type } from "../../format/v1.ts";
import { Buffer } from "node:buffer";

Deno.test("v1: the records reach the version the header says was stored", () => {
  const reader = new V1BackupReader("file:///x.dbak", PRE_4090_BACKUP);
  assertEquals(reader.describe().lastVersion, 46);
  assertEquals([...reader.entries()].at(-1)?.version, 46);
});

Deno.test("v1: a file cut short of its header's version is refused, not restored older", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup.dbak`;
  Deno.writeFileSync(path, Deno.readFileSync(PRE_4090_BACKUP).subarray(0, 60_000));
  const reader = new V1BackupReader(`file://${path}`, path);
  for (const read of [() => reader.describe(), () => [...reader.entries()]]) {
    const error = await assertRejects(
      read,
      /v1 records end at version 28 but the header says version 46 was stored/,
    );
    assertEquals(error instanceof CorruptBackupError, true);
  }
  // A point-in-time read that stops before the damage still works.
  assertEquals([...reader.entries(20)].at(-1)?.version, 20);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("v1: a change of more than MAX_STATEMENTS statements is damage, not a crash", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup.dbak`;
  // Splitting 2^27 NULs would abort the process; the count is checked at 2^24 first.
  const change = encodeV1Record(V1Type.Change, 1, new Uint8Array(MAX_STATEMENTS));
  const header = encodeV1Header({
    version: 1,
    nextOffset: V1_HEADER_SIZE + change.length,
    prevVersion: 0,
    lastOffset: V1_HEADER_SIZE,
    count: 1,
  });
  Deno.writeFileSync(path, Buffer.concat([header, change]));
  const reader = new V1BackupReader(`file://${path}`, path);
  const error = await assertRejects(
    () => [...reader.entries()],
    new RegExp(`v1 change of more than ${MAX_STATEMENTS} statements at offset ${V1_HEADER_SIZE} `),
  );
  assertEquals(error instanceof CorruptBackupError && error.offset, V1_HEADER_SIZE);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("v1: a change past a gap in the versions is damage, named at its offset in the v1 file", async () => {
  // upgrade converted up to the gap, then refused its own half-made copy by a path it had
  // removed ("...node.clnb.upgrading-PID/log-...clnb; the backup is damaged").
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup.dbak`;
  const change = (version: number) =>
    encodeV1Record(
      V1Type.Change,
      version,
      new TextEncoder().encode(`UPDATE vars SET v=${version}`),
    );
  const records = [change(1), change(2), change(4)];
  const gapAt = V1_HEADER_SIZE + records[0].length + records[1].length;
  const header = encodeV1Header({
    version: 4,
    nextOffset: gapAt + records[2].length,
    prevVersion: 2,
    lastOffset: gapAt,
    count: 3,
  });
  Deno.writeFileSync(path, Buffer.concat([header, ...records]));
  const reader = new V1BackupReader(`file://${path}`, path);
  for (const read of [() => reader.describe(), () => [...reader.entries()]]) {
    const error = await assertRejects(
      read,
      new RegExp(`v1 change 4 follows version 2 at offset ${gapAt} of "${path}"`),
    );
    assertEquals(error instanceof CorruptBackupError, true);
  }
  Deno.removeSync(dir, { recursive: true });
});
