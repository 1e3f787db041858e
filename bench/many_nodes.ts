/**
 * One server, many nodes: 50 simulated nodes, each its own v2 connection and key, write
 * concurrently to one server process; the ACK latency each change sees, the changes per
 * second all together, and the server's peak RSS. The 50 clients share this process.
 *
 * @module
 */
import { NodeRegistry } from "../lib/server/nodes.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { keyFromText } from "../lib/wire/handshake.ts";
import { freePort } from "../tests/support/server_process.ts";
import { bumpStatement } from "../tests/support/statements.ts";
import { spawnRootServer } from "./remote.ts";
import { row, type Section, type SectionResult } from "./section.ts";
import { summarize } from "./stats.ts";

const NODES = 50;

/** The peak resident set of process `pid`, in MB (VmHWM). */
function peakRssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

export const manyNodes: Section = {
  name: "nodes",
  async run(context): Promise<SectionResult> {
    const perNode = context.quick ? 100 : 400;
    const root = `${context.tmp}/many-nodes`;
    const registry = new NodeRegistry(root);
    const names = Array.from({ length: NODES }, (_, i) => `node${i}`);
    const keys = names.map((name) => keyFromText(registry.add(name))!);
    const port = freePort();
    const server = await spawnRootServer(root, port);
    const latencies: number[] = [];
    let seconds: number;
    let rss: number;
    context.log(`nodes: ${NODES} nodes write ${perNode} changes each to one server, at once`);
    try {
      const backends = await Promise.all(
        names.map((node, i) =>
          SocketBackend.connect(`socket:127.0.0.1:${port}`, {
            policy: DEFAULT_RETRY_POLICY,
            credential: { node, key: keys[i], path: "-" },
          })
        ),
      );
      const started = performance.now();
      await Promise.all(backends.map(async (backend, n) => {
        for (let version = 1; version <= perNode; version++) {
          const sent = performance.now();
          await backend.append({
            version,
            statements: [
              `INSERT INTO payments VALUES (${n}, ${version}, '${"x".repeat(200)}')`,
              bumpStatement(version - 1),
            ],
          });
          latencies.push(performance.now() - sent);
        }
      }));
      seconds = (performance.now() - started) / 1000;
      rss = peakRssMb(server.pid);
      for (const backend of backends) backend.close();
    } finally {
      server.kill("SIGTERM");
      await server.status;
    }
    const ack = summarize(latencies);
    const section = `${NODES} nodes on one server`;
    return {
      rows: [
        row({ section, metric: "ACK latency, p50", value: ack.p50, unit: "ms" }),
        row({ section, metric: "ACK latency, p99", value: ack.p99, unit: "ms" }),
        row({
          section,
          metric: "changes per second, all nodes",
          value: latencies.length / seconds,
          unit: "/s",
          note: "each change synced (fdatasync) before its ACK; the clients share one process",
        }),
        row({ section, metric: "server peak RSS", value: rss, unit: "MB" }),
      ],
      details: { nodes: NODES, per_node: perNode, seconds, ack_ms: ack, server_rss_mb: rss },
    };
  },
};
