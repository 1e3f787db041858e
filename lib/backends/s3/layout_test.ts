import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../../tests/support/assert.ts";
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

// A base covering records up to 3: the changes of the tests below come after it.
const base3: S3Entry = { kind: "base", key: baseKey("", 3, 3), size: 500, version: 3, seq: 3 };

const gen = (seq: number, g: number, version = seq): S3Entry => ({
  kind: "change",
  key: changeKey("", seq, g, version),
  size: 40,
  seq,
  gen: g,
  version,
});

Deno.test("S3 layout: each record is read at the generation the change after it was stored on", () => {
  // A copy of the node stored generation 1 of record 5 over the node's own; the node then
  // stored record 6 on its generation 0. The history is the node's; generation 1 is garbage.
  const node = [gen(4, 0), gen(5, 0), gen(6, 0)];
  const copy = gen(5, 1);
  const follows = new Map([[gen(6, 0).key, 0]]);
  const layout = resolveLayout([base3, ...node, copy], follows);
  assertEquals(layout.sources.map((s) => s.key), node.map((e) => e.key));
  assertEquals(layout.garbage.map((e) => e.key), [copy.key]);
  // A rewind's successor is stored on it: the highest generation.
  const rewound = resolveLayout([base3, ...node, copy], new Map([[gen(6, 0).key, 1]]));
  assertEquals(rewound.sources.map((s) => s.key), [gen(4, 0).key, copy.key, gen(6, 0).key]);
  // The newest record, which nothing follows yet, is read at its highest generation; so is
  // one under an older backup's change, which says nothing.
  const top = resolveLayout([base3, gen(4, 0), gen(5, 0), copy]);
  assertEquals(top.sources.map((s) => s.key), [gen(4, 0).key, copy.key]);
  assertEquals([top.version, top.rewindVersion], [5, 4]);
  const older = resolveLayout([base3, ...node, copy]);
  assertEquals(older.sources.map((s) => s.key), [gen(4, 0).key, copy.key, gen(6, 0).key]);
});

Deno.test("S3 layout: a change whose predecessor's generation is gone, or two of one generation, is refused", () => {
  // The rewind's generation 1 deleted while the dropped generation 0 is still there: read by
  // the highest generation, the dropped change would come back into the history.
  const follows = new Map([[gen(6, 0).key, 1]]);
  const missing = assertThrows(() =>
    resolveLayout([base3, gen(4, 0), gen(5, 0), gen(6, 0)], follows)
  );
  assertEquals(
    missing.message,
    `Cannot read backup: record 5 lacks generation 1, which the change after it was stored ` +
      `on, at "${gen(6, 0).key}"; the backup is damaged: restore from another copy, or init a ` +
      `new backup from the node's database`,
  );
  // Once a pack holds record 5, its change objects are garbage and nothing is missing.
  const packed = resolveLayout([base3, pack(4, 5), gen(5, 0), gen(6, 0)], follows);
  assertEquals(packed.sources.map((s) => s.key), [pack(4, 5).key, gen(6, 0).key]);
  // Two writers' changes of one record at one generation, under different versions.
  const twice = assertThrows(() => resolveLayout([base3, gen(4, 0), gen(4, 0, 3)]));
  assertMatch(
    twice.message,
    /record 4 stored twice at generation 0 .*two writers used this backup/,
  );
});
