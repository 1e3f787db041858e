import { assertEquals } from "../../tests/support/assert.ts";
import { DatabaseSync } from "node:sqlite";
import { lastBlock } from "./last_block.ts";

Deno.test("lastBlock: the highest block, or nothing where there is none to name", () => {
  const db = new DatabaseSync(":memory:");
  try {
    assertEquals(lastBlock(db), undefined, "no blocks table");
    db.exec("CREATE TABLE blocks (height INTEGER, hash BLOB, prev_hash BLOB, UNIQUE(height))");
    assertEquals(lastBlock(db), undefined, "no block yet");
    db.exec("INSERT INTO blocks (height) VALUES (871202), (871203), (871180)");
    assertEquals(lastBlock(db), 871203);
    // Another schema's table of that name: no note, and no failed restore over one.
    db.exec("DROP TABLE blocks; CREATE TABLE blocks (id INTEGER)");
    assertEquals(lastBlock(db), undefined);
  } finally {
    db.close();
  }
});
