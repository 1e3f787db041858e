import { assertEquals } from "../../tests/support/assert.ts";
import { FailureLog } from "./log_limit.ts";

Deno.test("failure lines: each kind's first ones at once, the rest counted once its minute is over", () => {
  const lines: string[] = [];
  let now = 0;
  const failures = new FailureLog(
    (level, message) => lines.push(`${level}: ${message}`),
    2,
    () => now,
  );
  for (let i = 1; i <= 4; i++) failures.line("login", i === 4 ? "error" : "warning", `login ${i}`);
  failures.line("protocol", "warning", "protocol 1");
  now = 59_999;
  failures.flush();
  assertEquals(lines, ["warning: login 1", "warning: login 2", "warning: protocol 1"]);
  // The minute over: the count, at the most severe level of the lines left out; a kind that
  // left none out says nothing.
  now = 60_000;
  failures.flush();
  assertEquals(lines.slice(3), [
    "error: refused logins: 2 more in the last minute, not logged (at most 2 a minute of each " +
    "kind are)",
  ]);
  failures.line("login", "warning", "login 5");
  failures.line("login", "warning", "login 6");
  failures.line("login", "warning", "login 7");
  // The server stopping says what its minute left out so far.
  failures.flush(true);
  assertEquals(lines.slice(4), [
    "warning: login 5",
    "warning: login 6",
    "warning: refused logins: 1 more in the last minute, not logged (at most 2 a minute of " +
    "each kind are)",
  ]);
});
