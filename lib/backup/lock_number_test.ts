import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { lockNumber } from "./lock_number.ts";

Deno.test("lockNumber: absent is undefined; each rule refuses in its words", () => {
  const lock = { backend_url: "file:///b", a: 0, b: 2.5, c: -1, d: "3", e: 1e999 };
  assertEquals(lockNumber(lock, "none", "seconds"), undefined);
  assertEquals(lockNumber(lock, "a", "seconds"), 0);
  assertEquals(lockNumber(lock, "b", { above0: "" }), 2.5);
  const refused = (key: string, rule: Parameters<typeof lockNumber>[2]) =>
    assertThrows(() => lockNumber(lock, key, rule)).message;
  assertEquals(
    refused("a", { above0: "every wait is bounded" }),
    `Cannot start backup: "a" in backup.lock must be a number of seconds above 0 (every wait ` +
      `is bounded), not 0: fix or remove it`,
  );
  assertEquals(
    refused("a", { above0: "" }),
    `Cannot start backup: "a" in backup.lock must be a number of seconds above 0, not 0: fix ` +
      `or remove it`,
  );
  assertEquals(
    refused("b", "whole"),
    `Cannot start backup: "b" in backup.lock must be a whole number, not 2.5: fix or remove it`,
  );
  for (const key of ["c", "d", "e"]) refused(key, "seconds");
});
