/**
 * A wire v2 server in a process of its own, for a test that measures the server's memory:
 * under `deno test --parallel` other test files share the test's process, and its RSS.
 *
 * Usage: `deno run -A server_child.ts <nodes-root> <max-payload-bytes> <limits-json>`. It
 * prints `port <n>` once it listens, then `log <level>: <message>` for each log line, and
 * closes the server when its stdin ends.
 *
 * @module
 */
import { BackupServer } from "../../lib/server/server.ts";
import { NodeRegistry } from "../../lib/server/nodes.ts";

const [root, maxPayloadBytes, limits] = Deno.args;
const encoder = new TextEncoder();
const say = (line: string) => Deno.stdout.writeSync(encoder.encode(`${line}\n`));

const server = new BackupServer({
  hostname: "127.0.0.1",
  port: 0,
  log: (level, message) => say(`log ${level}: ${message}`),
  nodes: new NodeRegistry(root),
  maxPayloadBytes: Number(maxPayloadBytes),
  limits: JSON.parse(limits),
});
say(`port ${server.port}`);
for await (const _ of Deno.stdin.readable);
await server.close();
