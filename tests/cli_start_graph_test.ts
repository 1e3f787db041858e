/**
 * What the CLI evaluates before it knows its command: the modules cli.ts reaches by static
 * imports. Each command's code is loaded when that command runs (lib/cli/main.ts), so that
 * `--help`, or one command, does not evaluate every other's.
 */
import { assertEquals } from "./support/assert.ts";
import { isRemoteOnly, staticGraph } from "./support/static_graph.ts";
import { COMMANDS } from "../lib/cli/main.ts";

Deno.test("cli start: no command's module, no network client and no SQLite is loaded by static imports", async () => {
  const graph = await staticGraph("cli.ts");
  const commands = Object.keys(COMMANDS).map((name) =>
    name === "doctor" ? "lib/cli/doctor/doctor.ts" : `lib/cli/${name}.ts`
  );
  // The URL parsers are what advice names commands with; the backends themselves wait.
  const parsers = ["lib/backends/url.ts", "lib/backends/s3/s3_url.ts"];
  const eager = graph.filter((path) =>
    commands.includes(path) || (path.startsWith("lib/backends/") && !parsers.includes(path)) ||
    path.startsWith("lib/wire/") || ["node:tls", "node:net", "node:sqlite"].includes(path)
  );
  assertEquals(eager, []);
});

Deno.test("status: the socket:, s3:// and wire code is loaded only for a backup of theirs", async () => {
  // Operators run status on a file backup most; the network clients cost it 25 ms of CPU.
  const graph = await staticGraph("lib/cli/status.ts");
  assertEquals(graph.filter(isRemoteOnly), []);
});
