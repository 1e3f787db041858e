import { assertEquals } from "../../tests/support/assert.ts";
import { DatabaseSync } from "node:sqlite";
import { howTheyDiffer } from "./existing.ts";

/** Where two databases made by `one` and `two` differ, per howTheyDiffer. */
function compare(one: string, two: string): string | undefined {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compare-" });
  try {
    const [a, b] = [`${dir}/a.sqlite3`, `${dir}/b.sqlite3`];
    for (const [path, sql] of [[a, one], [b, two]]) {
      const db = new DatabaseSync(path);
      db.exec(sql);
      db.close();
    }
    return howTheyDiffer(a, b);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const CHANNELS = "CREATE TABLE channels (id INTEGER PRIMARY KEY, scid INTEGER, funding INTEGER);";

Deno.test("howTheyDiffer: integers past 2^53 (a mainnet short_channel_id) are compared exactly, and the rows after them too", () => {
  // 900000x1x0 on mainnet: past Number.MAX_SAFE_INTEGER.
  const scid = (900000n << 40n) | (1n << 16n);
  const rows = (last: bigint, funding: number) =>
    `INSERT INTO channels VALUES (1, ${scid}, 1000), (2, ${last}, ${funding});`;
  assertEquals(compare(CHANNELS + rows(scid, 5), CHANNELS + rows(scid, 5)), undefined);
  // A row after a big integer.
  assertEquals(
    compare(CHANNELS + rows(scid, 5), CHANNELS + rows(scid, 6)),
    "a row of table channels differs",
  );
  // Two big integers one apart, which a JavaScript number cannot tell apart.
  assertEquals(
    compare(CHANNELS + rows(scid, 5), CHANNELS + rows(scid + 1n, 5)),
    "a row of table channels differs",
  );
});

Deno.test("howTheyDiffer: a value's type counts (1 is not 1.0, a text is its bytes)", () => {
  const t = "CREATE TABLE t (x);";
  assertEquals(
    compare(`${t} INSERT INTO t VALUES (1)`, `${t} INSERT INTO t VALUES (1.0)`),
    "a row of table t differs",
  );
  assertEquals(
    compare(
      `${t} INSERT INTO t VALUES (CAST(x'ff' AS TEXT))`,
      `${t} INSERT INTO t VALUES (CAST(x'fe' AS TEXT))`,
    ),
    "a row of table t differs",
  );
  assertEquals(
    compare(`${t} INSERT INTO t VALUES ('a')`, `${t} INSERT INTO t VALUES (x'61')`),
    "a row of table t differs",
  );
  assertEquals(
    compare(
      `${t} INSERT INTO t VALUES ('a')`,
      `${t} INSERT INTO t VALUES ('a')`,
    ),
    undefined,
  );
});

Deno.test("howTheyDiffer: every table counts: one named sqlite<x>, sqlite_sequence, a WITHOUT ROWID one", () => {
  // LIKE 'sqlite_%' would take '_' for any character.
  const named = "CREATE TABLE sqliteX (x);";
  assertEquals(
    compare(`${named} INSERT INTO sqliteX VALUES (1)`, `${named} INSERT INTO sqliteX VALUES (2)`),
    "a row of table sqliteX differs",
  );
  // The next AUTOINCREMENT id differs: the next insert would differ.
  const auto = "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v);";
  assertEquals(
    compare(
      `${auto} INSERT INTO a (v) VALUES (1)`,
      `${auto} INSERT INTO a (v) VALUES (1); INSERT INTO a (v) VALUES (2); DELETE FROM a WHERE v = 2`,
    ),
    "a row of table sqlite_sequence differs",
  );
  const without = "CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID;";
  assertEquals(
    compare(
      `${without} INSERT INTO w VALUES ('b', 2), ('a', 1)`,
      `${without} INSERT INTO w VALUES ('a', 1), ('b', 2)`,
    ),
    undefined,
  );
  assertEquals(
    compare(`${without} INSERT INTO w VALUES ('a', 1)`, `${without} INSERT INTO w VALUES ('a', 2)`),
    "a row of table w differs",
  );
  // A view is schema only; its rows are its tables'.
  const view = `${CHANNELS} CREATE VIEW big AS SELECT * FROM channels WHERE funding > 10;`;
  assertEquals(compare(view, view), undefined);
  assertEquals(compare(view, CHANNELS), "their schemas differ");
});
