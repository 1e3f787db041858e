/**
 * `GET /metrics` in Prometheus' text format, per node: its backup's version and bytes, the
 * time of its last acknowledged write and the seconds since, and its open connections. It
 * listens on loopback only: the names and sizes are the operator's business.
 *
 * @module
 */

/** What the metrics show of one node. */
export interface NodeStats {
  /** The node's name. */
  node: string;
  /** Its backup's version (0 while it has none). */
  version: number;
  /** Bytes its backup holds. */
  bytes: number;
  /** Unix time in seconds of its last acknowledged write; `undefined`: none since start. */
  lastWrite: number | undefined;
  /** Connections it holds open. */
  connections: number;
}

const HELP: [string, string, (s: NodeStats, now: number) => number | undefined][] = [
  ["cln_backup_node_version", "The backup's data_version.", (s) => s.version],
  ["cln_backup_node_bytes", "Bytes the backup holds.", (s) => s.bytes],
  [
    "cln_backup_node_last_write_timestamp_seconds",
    "Unix time of the last acknowledged write.",
    (s) => s.lastWrite,
  ],
  [
    "cln_backup_node_lag_seconds",
    "Seconds since the last acknowledged write.",
    (s, now) => s.lastWrite === undefined ? undefined : Math.max(0, now - s.lastWrite),
  ],
  ["cln_backup_node_connections", "Open connections of the node.", (s) => s.connections],
  [
    "cln_backup_node_connected",
    "1 when the node has a connection open.",
    (s) => s.connections > 0 ? 1 : 0,
  ],
];

/** The metrics text for `stats`, at unix time `now` (seconds). */
export function renderMetrics(stats: NodeStats[], now: number): string {
  const lines: string[] = [];
  for (const [name, help, value] of HELP) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const s of stats) {
      const v = value(s, now);
      if (v !== undefined) lines.push(`${name}{node="${s.node}"} ${v}`);
    }
  }
  return lines.join("\n") + "\n";
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** Why metrics may not listen on `hostname`, or `undefined` when it is loopback. */
export function metricsHostProblem(hostname: string): string | undefined {
  return LOOPBACK.test(hostname) ? undefined : `metrics listen on loopback only, not ` +
    `"${hostname}": use 127.0.0.1 or [::1], and reach them through SSH`;
}

/** Serves `GET /metrics` on the loopback `hostname:port`; anything else is 404. */
export function serveMetrics(
  hostname: string,
  port: number,
  stats: () => NodeStats[],
): Deno.HttpServer<Deno.NetAddr> {
  const problem = metricsHostProblem(hostname);
  if (problem) throw new Error(problem);
  return Deno.serve({ hostname, port, onListen: () => {} }, (request) => {
    const { pathname } = new URL(request.url);
    if (request.method !== "GET" || pathname !== "/metrics") {
      return new Response("not found\n", { status: 404 });
    }
    return new Response(renderMetrics(stats(), Date.now() / 1000), {
      headers: { "content-type": "text/plain; version=0.0.4" },
    });
  });
}
