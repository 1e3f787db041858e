/**
 * A wire v2 server in a process of its own, for a test that measures the server's memory:
 * under `deno test --parallel` other test files share the test's process, and its RSS.
 *
 * Usage: `deno run -A server_child.ts <nodes-root> <port> <max-payload-bytes> <limits-json>`.
 * It listens on the loopback `port` (over TLS when the root holds a certificate, as `server`
 * does), writes `<level>: <message>` to stderr for each log line, and closes the server on
 * SIGTERM.
 *
 * @module
 */
import { BackupServer } from "../../lib/server/server.ts";
import { NodeRegistry } from "../../lib/server/nodes.ts";
import { loadTlsIdentity } from "../../lib/server/tls_identity.ts";

const [root, port, maxPayloadBytes, limits] = Deno.args;
const encoder = new TextEncoder();

const server = new BackupServer({
  hostname: "127.0.0.1",
  port: Number(port),
  log: (level, message) => Deno.stderr.writeSync(encoder.encode(`${level}: ${message}\n`)),
  nodes: new NodeRegistry(root),
  maxPayloadBytes: Number(maxPayloadBytes),
  limits: JSON.parse(limits),
  tls: loadTlsIdentity(root),
});
Deno.addSignalListener("SIGTERM", () => server.close().then(() => Deno.exit(0)));
