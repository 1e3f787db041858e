import { assertEquals } from "../../tests/support/assert.ts";
import type { BackupDescription, BackupEntry, BackupReader } from "../backends/backend.ts";
import { holdsOnly } from "./left_on_server.ts";

const VERSION = 11;

/** A reader of a backup holding `database` at VERSION in parts cut at `cuts`, then `after`. */
function readerOf(
  database: Uint8Array,
  cuts: number[],
  { after = [], ...described }: Partial<BackupDescription> & { after?: BackupEntry[] } = {},
): BackupReader {
  const bounds = [0, ...cuts, database.length];
  const entries: BackupEntry[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const bytes = database.slice(bounds[i], bounds[i + 1]);
    entries.push({ kind: "snapshot-part", version: VERSION, bytes });
  }
  entries.push({ kind: "snapshot-end", version: VERSION, totalBytes: database.length });
  return {
    url: "socket:example:1",
    describe: () => ({
      url: "socket:example:1",
      format: "cln-backup",
      snapshots: [VERSION],
      firstVersion: VERSION,
      lastVersion: VERSION,
      records: entries.length,
      bytes: database.length,
      tornBytes: 0,
      tail: undefined,
      ...described,
    }),
    entries: () => [...entries, ...after],
    close() {},
  };
}

/** Whether `reader` holds what the file of `local`'s bytes holds. */
function holds(reader: BackupReader, local: Uint8Array): boolean {
  const path = Deno.makeTempFileSync();
  try {
    Deno.writeFileSync(path, local);
    return holdsOnly(reader, path, VERSION);
  } finally {
    Deno.removeSync(path);
  }
}

const database = crypto.getRandomValues(new Uint8Array(50_000));

Deno.test("holdsOnly: the same bytes, however the parts are cut", () => {
  for (const cuts of [[], [1], [4096, 8192, 49_999], [7, 13, 30_001]]) {
    assertEquals(holds(readerOf(database, cuts), database), true, `${cuts}`);
  }
});

Deno.test("holdsOnly: a byte more or less, or one byte other, is not the database", () => {
  const longer = new Uint8Array(database.length + 1);
  longer.set(database);
  const other = database.slice();
  other[other.length - 1] ^= 1;
  for (const local of [longer, database.subarray(0, database.length - 1), other]) {
    assertEquals(holds(readerOf(database, [4096]), local), false, `${local.length}`);
  }
});

Deno.test("holdsOnly: anything after the snapshot, or a backup not of that shape, is not an init's", () => {
  const change: BackupEntry = { kind: "change", version: VERSION, statements: ["PRAGMA x"] };
  const refused: Parameters<typeof readerOf>[2][] = [
    { after: [change] },
    { after: [{ kind: "snapshot-end", version: VERSION, totalBytes: database.length }] },
    { encrypted: true },
    { tornBytes: 10 },
    { lastVersion: VERSION + 1 },
    { snapshots: [VERSION - 5, VERSION] },
  ];
  for (const shape of refused) {
    assertEquals(holds(readerOf(database, [4096], shape), database), false, JSON.stringify(shape));
  }
});
