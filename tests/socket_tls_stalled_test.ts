/**
 * Peers that start a TLS handshake and go quiet: the server's handshake timeout and its
 * eviction of the oldest pending connection must really close them (the peer sees the end,
 * the server's file descriptor is freed), or they pile up until the server cannot accept a
 * node's connection ("Too many open files"). The server runs in a process of its own, so its
 * open file descriptors are its own.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { freePort, spawnListening } from "./support/server_process.ts";
import { NodeRegistry } from "../lib/server/nodes.ts";
import { initTlsIdentity } from "../lib/server/tls_identity.ts";
import { keyFromText } from "../lib/wire/handshake.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import type { ServerLimits } from "../lib/server/server.ts";

const SERVER_CHILD = new URL("./support/server_child.ts", import.meta.url).pathname;
const POLICY = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 };
/** The first bytes of a ClientHello: a record header, then two bytes of its body. */
const HALF_CLIENT_HELLO = Uint8Array.of(0x16, 3, 1, 2, 0, 1);
const STALLED = 50;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function openFds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** Polls until `check` holds, up to `ms`; returns whether it did. */
async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  for (const by = performance.now() + ms; performance.now() < by; await delay(50)) {
    if (check()) return true;
  }
  return check();
}

/**
 * Whether the server ends `conn` (EOF or a reset) within `ms`; `undefined` while it stays open.
 */
async function endedWithin(conn: Deno.Conn, ms: number): Promise<number | undefined> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const read = conn.read(new Uint8Array(64)).then(() => true, () => true);
  const ended = await Promise.race([
    read,
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms)),
  ]);
  clearTimeout(timer);
  return ended ? performance.now() - started : undefined;
}

/** A TLS server of node alice in a process of its own, with `limits`. */
async function withTlsServer(
  limits: Partial<ServerLimits>,
  body: (s: { port: number; pid: number; url: string; alice: SocketCredential }) => Promise<void>,
): Promise<string[]> {
  const root = Deno.makeTempDirSync({ prefix: "tls-stalled-" });
  const nodes = new NodeRegistry(`${root}/server`);
  const key = keyFromText(nodes.add("alice"))!;
  const fp = await initTlsIdentity(nodes.root);
  const port = freePort();
  const child = await spawnListening(Deno.execPath(), [
    "run",
    "-A",
    SERVER_CHILD,
    nodes.root,
    String(port),
    String(1 << 20),
    JSON.stringify(limits),
  ], port);
  const logs = new Response(child.stderr).text();
  try {
    await body({
      port,
      pid: child.pid,
      url: `socket+tls:127.0.0.1:${port}?fp=${fp}`,
      alice: { node: "alice", key, path: "-" },
    });
  } finally {
    child.kill("SIGTERM");
    await child.status;
    Deno.removeSync(root, { recursive: true });
  }
  return (await logs).split("\n").filter(Boolean);
}

type SocketCredential = { node: string; key: Uint8Array; path: string };

/** Opens `count` connections that each send half a ClientHello and then nothing. */
async function stall(port: number, count: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < count; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(HALF_CLIENT_HELLO);
    conns.push(conn);
  }
  return conns;
}

/** alice connects over TLS, proves her key and writes a change. */
async function aliceWrites(url: string, alice: SocketCredential, version: number): Promise<void> {
  const backend = await SocketBackend.connect(url, { policy: POLICY, credential: alice });
  try {
    await backend.append({ version, statements: [`CREATE TABLE t${version} (a)`] });
    assertEquals(backend.state().version, version);
  } finally {
    backend.close();
  }
}

Deno.test("stalled TLS handshakes are closed at the handshake timeout, their descriptors freed, and a node then writes", async () => {
  const logs = await withTlsServer(
    { handshakeTimeoutMs: 1_000 },
    async ({ port, pid, url, alice }) => {
      await aliceWrites(url, alice, 1);
      await delay(200);
      const before = openFds(pid);
      const conns = await stall(port, STALLED);
      try {
        assert(
          await eventually(() => openFds(pid) >= before + STALLED, 5_000),
          `the server holds ${openFds(pid)} descriptors, ${before} before ${STALLED} connections`,
        );
        const ended = await Promise.all(conns.map((conn) => endedWithin(conn, 6_000)));
        const open = ended.filter((ms) => ms === undefined).length;
        assertEquals(open, 0, `${open} of ${STALLED} stalled connections still open after 6 s`);
        assert(
          await eventually(() => openFds(pid) <= before + 2, 3_000),
          `the server holds ${openFds(pid)} descriptors, ${before} before`,
        );
      } finally {
        for (const conn of conns) conn.close();
      }
      await aliceWrites(url, alice, 2);
    },
  );
  assert(!logs.some((l) => /cannot accept/.test(l)), logs.join("\n"));
});

Deno.test("stalled TLS handshakes past the pending limit: the oldest are really closed, and a node still writes", async () => {
  const pending = 10;
  await withTlsServer(
    { handshakeTimeoutMs: 60_000, pendingConnections: pending },
    async ({ port, pid, url, alice }) => {
      await delay(200);
      const before = openFds(pid);
      const conns = await stall(port, STALLED);
      try {
        // The oldest ones, each closed for a newer one, end at once; the newest wait.
        const ended = await Promise.all(conns.map((conn) => endedWithin(conn, 3_000)));
        const open = ended.map((ms, i) => ms === undefined ? i : -1).filter((i) => i >= 0);
        assertEquals(
          open,
          Array.from({ length: pending }, (_, i) => STALLED - pending + i),
          "the connections still open",
        );
        assert(
          await eventually(() => openFds(pid) <= before + pending + 2, 3_000),
          `the server holds ${openFds(pid)} descriptors, ${before} before`,
        );
        // Its handshake closes the oldest stalled one in turn.
        await aliceWrites(url, alice, 1);
        assert(await endedWithin(conns[STALLED - pending], 3_000) !== undefined);
      } finally {
        for (const conn of conns) conn.close();
      }
    },
  );
});
