import { assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { printConfigLine } from "./install_plugin.ts";
import { BufferedOutput } from "../../tests/support/cli_testing.ts";

Deno.test("the config line warns when Deno runs from npx's cache, which npm may clean", () => {
  const output = new BufferedOutput();
  printConfigLine(output, "/n/cln-backup-plugin", "/home/u/.npm/_npx/1a2b/node_modules/deno/deno");
  assertEquals(output.stderr.length, 1);
  assertMatch(output.stderr[0], /^Warning: .*_npx.*: run "npm install deno@2.9.6" in the project/);
  assertEquals(output.stdout.at(-1), "important-plugin=/n/cln-backup-plugin");

  const stable = new BufferedOutput();
  printConfigLine(stable, "/n/cln-backup-plugin", "/usr/local/bin/deno");
  assertEquals(stable.stderr, []);
});
