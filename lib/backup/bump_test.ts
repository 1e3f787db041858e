import { bumpedFrom } from "./bump.ts";
import { assertEquals } from "../../tests/support/assert.ts";

const BUMP = (m: number | string) =>
  `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${m}`;

Deno.test("bumpedFrom: the bump lightningd ends a transaction with", () => {
  assertEquals(bumpedFrom(["INSERT INTO t VALUES (1)", BUMP(0)]), 0);
  assertEquals(bumpedFrom([BUMP(478)]), 478);
  assertEquals(bumpedFrom(["DELETE FROM t", BUMP(4294967296)]), 4294967296);
});

Deno.test("bumpedFrom: tolerates a semicolon, spacing and case", () => {
  assertEquals(bumpedFrom([BUMP(5) + ";"]), 5);
  assertEquals(bumpedFrom([`  ${BUMP(5)} ; `]), 5);
  assertEquals(
    bumpedFrom([
      "update VARS set INTVAL=intval+1\nwhere NAME='data_version'\tand intval=12",
    ]),
    12,
  );
});

Deno.test("bumpedFrom: no statements, or no bump at the end", () => {
  assertEquals(bumpedFrom([]), undefined);
  assertEquals(bumpedFrom(["PRAGMA foreign_keys = OFF;"]), undefined);
  assertEquals(bumpedFrom(["PRAGMA foreign_keys = ON;"]), undefined);
  // A bump that is not the last statement does not count.
  assertEquals(bumpedFrom([BUMP(3), "INSERT INTO t VALUES (1)"]), undefined);
});

Deno.test("bumpedFrom: statements that only look like the bump", () => {
  for (
    const statement of [
      BUMP("5 OR 1=1"),
      BUMP(-1),
      BUMP("x"),
      BUMP(""),
      "UPDATE vars SET intval = intval + 1 WHERE name = 'other_var' AND intval = 5",
      "UPDATE vars SET intval = intval + 2 WHERE name = 'data_version' AND intval = 5",
      "UPDATE vars SET intval = intval + 1 WHERE name = 'data_version'",
      "UPDATE vars2 SET intval = intval + 1 WHERE name = 'data_version' AND intval = 5",
      `${BUMP(5)}; DELETE FROM vars`,
    ]
  ) {
    assertEquals(bumpedFrom(["INSERT INTO t VALUES (1)", statement]), undefined, statement);
  }
});

Deno.test("bumpedFrom: trailing space is fine; a long last statement is not scanned", () => {
  const bump = "UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = 5";
  assertEquals(bumpedFrom([`${bump} ;  \n`]), 5);
  // Not scanned at all: a backtracking regex took seconds on this, with lightningd waiting.
  assertEquals(bumpedFrom([`${bump}${" ".repeat(50_000)}x`]), undefined);
  assertEquals(bumpedFrom([`${" ".repeat(200)}${bump}`]), undefined);
});
