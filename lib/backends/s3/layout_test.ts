import { assertEquals } from "../../../tests/support/assert.ts";
import { resolveLayout } from "./layout.ts";
import { changeKey, packKey, type S3Entry } from "./keys.ts";

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
