import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { listBackup, resolveLayout } from "./layout.ts";
import { type S3Client, S3Error } from "./client.ts";
import { baseKey, changeKey, packKey, type S3Entry } from "./keys.ts";

const change = (seq: number, version = seq): S3Entry => ({
  kind: "change",
  key: changeKey("", seq, 0, version),
  size: 40,
  seq,
  gen: 0,
  version,
});

const pack = (first: number, last: number, version = last): S3Entry => ({
  kind: "pack",
  key: packKey("", first, last, version),
  size: 400,
  first,
  last,
  version,
});

Deno.test("S3 layout: of two packs from the same record, the longer holds them; the other is garbage", () => {
  // A packer whose pack landed but whose try failed (its read-back timed out, say) packs
  // again from the same record, one change later: both packs stay, in key order.
  const shorter = pack(1, 4);
  const longer = pack(1, 5);
  const layout = resolveLayout([change(6), shorter, longer]);
  assertEquals(layout.sources.map((s) => s.key), [longer.key, change(6).key]);
  assertEquals(layout.garbage.map((e) => e.key), [shorter.key]);
  assertEquals([layout.lastSeq, layout.version, layout.records], [6, 6, 6]);
});

Deno.test("S3 layout: a pack that straddles a newer base gives way to the longer one stored after it", () => {
  // A packer's try stored records 1-5 but failed at its read-back, so it kept them to pack;
  // a compaction then folded records up to 3 into a base, and the packer, from record 4,
  // stored records 4-8. Read both, the spool would hold records 4 and 5 twice.
  const base: S3Entry = { kind: "base", key: baseKey("", 3, 3), size: 500, version: 3, seq: 3 };
  const straddling = pack(1, 5);
  const after = pack(4, 8);
  const layout = resolveLayout([base, change(9), straddling, after]);
  assertEquals(layout.sources.map((s) => s.key), [after.key, change(9).key]);
  assertEquals(layout.garbage.map((e) => e.key), [straddling.key]);
  assertEquals([layout.lastSeq, layout.version, layout.records], [9, 9, 6]);
});

Deno.test("S3 layout: a listing that names an object twice is refused, so nothing deletes it as garbage", async () => {
  const base = { key: "node/base-00000000000000000001-00000000000000000000.clnb", size: 500 };
  const change = {
    key: "node/change-00000000000000000001-0000-00000000000000000002.clnr",
    size: 40,
  };
  // A store that repeats a page (a continuation token that did not move on), as some do.
  const client = {
    url: { prefix: "node/" },
    where: "bucket b at http://s3.test",
    async *list() {
      yield [base, change];
      yield [base, change];
    },
  } as unknown as S3Client;
  const error = await assertRejects(() => listBackup(client));
  assert(error instanceof S3Error && error.transient, "listed again, as a failed listing is");
  assertEquals(
    error.message,
    `Cannot list "node/": the listing names "${base.key}" twice (bucket b at ` +
      `http://s3.test); a listing that repeats an object may also leave one out: check the S3 ` +
      `service`,
  );
});
