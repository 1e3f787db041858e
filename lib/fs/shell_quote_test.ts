import { assertEquals } from "../../tests/support/assert.ts";
import { shellQuote } from "./shell_quote.ts";

Deno.test("shellQuote: a word with a space, quotes, $ and & reaches sh as that one word", () => {
  const words = [`/tmp/it's a "dir" $HOME`, "s3://b/n?endpoint=http://h&path-style=1", "''", ""];
  const output = new Deno.Command("sh", {
    args: ["-c", `printf '%s\\n' ${words.map(shellQuote).join(" ")}`],
    cwd: "/",
  }).outputSync();
  assertEquals(new TextDecoder().decode(output.stdout), words.map((w) => `${w}\n`).join(""));
});
