/**
 * Wire v2 over TLS: `server init-tls`, the real plugin backing up over TLS, a pinned
 * fingerprint that does not match, TLS through a real SOCKS5 proxy, and a root served in
 * the clear only when the operator says so.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { backUpWithPlugin, withServer } from "./support/v2_server.ts";
import { Microsocks } from "./support/microsocks.ts";
import { bumpStatement } from "./support/statements.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { fingerprint, TLS_CERT_NAME, TLS_KEY_NAME } from "../lib/server/tls_identity.ts";
import { BufferedOutput, removeNodeDir } from "./support/cli_testing.ts";
import { server as serverCommand } from "../lib/cli/server.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { encodePacket, PacketType } from "../lib/wire/packets.ts";
import net from "node:net";

const POLICY = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 };
const change = (version: number) => ({ version, statements: [bumpStatement(version - 1)] });

Deno.test("server init-tls prints the certificate's fingerprint, keeps its key 0600, and never replaces it", async () => {
  const root = Deno.makeTempDirSync({ prefix: "init-tls-" });
  try {
    const out = new BufferedOutput();
    assertEquals(await serverCommand(["init-tls", root], out), 0, out.transcript);
    const cert = Deno.readTextFileSync(`${root}/${TLS_CERT_NAME}`);
    const fp = await fingerprint(cert);
    assertMatch(fp, /^sha256:[0-9a-f]{64}$/);
    assertEquals(out.text.split("\n").filter((l) => l === fp).length, 1, out.text);
    assertEquals(Deno.statSync(`${root}/${TLS_KEY_NAME}`).mode! & 0o777, 0o600);
    const again = new BufferedOutput();
    assertEquals(await serverCommand(["init-tls", root], again), 1);
    assertMatch(
      again.stderr.join("\n"),
      new RegExp(`exists already \\(its fingerprint is ${fp}\\)`),
    );
    assertEquals(Deno.readTextFileSync(`${root}/${TLS_CERT_NAME}`), cert);

    // A root with nodes but no certificate is served in the clear only with --allow-plain.
    const bare = `${root}/bare`;
    assertEquals(await serverCommand(["add-node", bare, "alice"], new BufferedOutput()), 0);
    const plain = new BufferedOutput();
    assertEquals(await serverCommand([`file://${bare}`, "127.0.0.1:0"], plain), 1);
    assertMatch(plain.stderr.join("\n"), /has no TLS certificate.*init-tls.*--allow-plain/);

    Deno.chmodSync(`${root}/${TLS_KEY_NAME}`, 0o644);
    assertEquals(await serverCommand(["add-node", root, "bob"], new BufferedOutput()), 0);
    const exposed = new BufferedOutput();
    assertEquals(await serverCommand([`file://${root}`, "127.0.0.1:0"], exposed), 1);
    assertMatch(
      exposed.stderr.join("\n"),
      /Cannot serve backup: the TLS key ".*tls\.key" may be read by other users \(mode 0644\): run chmod 600 ".*tls\.key"/,
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("server init-tls writes its key 0600 into a new file, never a stale temp file another holds open", async () => {
  const root = Deno.makeTempDirSync({ prefix: "init-tls-" });
  try {
    // A killed init-tls's leftover, 0644, that another user opened while they could.
    const stale = `${root}/${TLS_KEY_NAME}.tmp`;
    Deno.writeTextFileSync(stale, "");
    Deno.chmodSync(stale, 0o644);
    const held = Deno.openSync(stale, { read: true });
    try {
      const out = new BufferedOutput();
      assertEquals(await serverCommand(["init-tls", root], out), 0, out.transcript);
      assertEquals(held.readSync(new Uint8Array(16)), null, "the held temp file got the key");
    } finally {
      held.close();
    }
    assertEquals(Deno.statSync(`${root}/${TLS_KEY_NAME}`).mode! & 0o777, 0o600);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("the plugin backs up over TLS and a restore equals the node; a plain client gets nothing", async () => {
  await withServer(
    async ({ root, url, nodes, server, credential, logs }) => {
      assert(url.startsWith("socket+tls:"));
      const dir = await backUpWithPlugin(root, url, nodes, "carol");
      removeNodeDir(dir);
      assert(logs.some((l) => /over TLS/.test(l)));
      await assertRejects(
        () =>
          SocketBackend.connect(`socket:127.0.0.1:${server.port}`, {
            policy: POLICY,
            credential: credential("alice"),
          }),
      );
      assert(!existsSync(nodes.backupDir("alice")));
      // A plain URL for a TLS server is told to use socket+tls: and the fingerprint.
      await assertRejects(
        () => SocketBackupReader.fetch(`socket:127.0.0.1:${server.port}`, 5_000, undefined),
        /the other end speaks TLS: .*socket\+tls: URL with its fingerprint/,
      );
    },
    {},
    { tls: true },
  );
});

/** What the server sends on `conn` until it closes it. */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(1024);
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return Uint8Array.from(chunks);
    chunks.push(...buffer.subarray(0, n));
  }
}

/** Polls `logs` until one matches `pattern`, up to `ms`; returns whether one did. */
async function logged(logs: string[], pattern: RegExp, ms: number): Promise<boolean> {
  for (const by = performance.now() + ms; performance.now() < by;) {
    if (logs.some((l) => pattern.test(l))) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return logs.some((l) => pattern.test(l));
}

Deno.test("a wire v1 client (the Python plugin) at a TLS server gets an alert, and the server logs why in one line", async () => {
  await withServer(
    async ({ server, logs }) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      try {
        await conn.write(encodePacket(PacketType.ReqMetadata));
        const answer = await readToEnd(conn);
        assertEquals(answer[0], 0x15, "a TLS alert");
      } finally {
        conn.close();
      }
      const line = new RegExp(
        `^warning: connection \\d+ from 127\\.0\\.0\\.1:\\d+: not TLS: this port speaks TLS only; ` +
          `a wire v1 client \\(the Python plugin\\) speaks none: serve it from a root without ` +
          `tls\\.crt, or move it to wire v2 first \\(README\\)$`,
      );
      assert(await logged(logs, line, 2_000), logs.join("\n"));
      assertEquals(logs.filter((l) => /not TLS/.test(l)).length, 1, logs.join("\n"));
    },
    {},
    { tls: true },
  );
});

Deno.test("connections lost mid-TLS-handshake are not logged", async () => {
  await withServer(
    async ({ server, logs }) => {
      const before = logs.length;
      // Half a ClientHello, then gone; nothing at all, then gone.
      for (const bytes of [Uint8Array.of(0x16, 3, 1, 2, 0, 1), new Uint8Array(0)]) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        if (bytes.length > 0) await conn.write(bytes);
        await new Promise((r) => setTimeout(r, 100));
        conn.close();
      }
      // Half a ClientHello, then reset (RST).
      const reset = net.connect({ host: "127.0.0.1", port: server.port });
      reset.on("error", () => {});
      await new Promise((r) => reset.once("connect", r));
      await new Promise((r) => reset.write(Uint8Array.of(0x16, 3, 1, 2, 0, 1), r));
      await new Promise((r) => setTimeout(r, 100));
      reset.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(logs.slice(before), []);
    },
    {},
    { tls: true },
  );
});

Deno.test("a fingerprint mismatch, or a URL that says neither fp nor ca, is refused in one line, with nothing sent or changed", async () => {
  await withServer(
    async ({ server, credential, logs, nodes, fingerprint: fp }) => {
      const alice = await SocketBackend.connect(
        `socket+tls:127.0.0.1:${server.port}?fp=${fp}`,
        { policy: POLICY, credential: credential("alice") },
      );
      await alice.append(change(1));
      alice.close();
      const before = Deno.readDirSync(nodes.backupDir("alice")).toArray().length;
      const sessions = logs.filter((l) => /: connected$/.test(l)).length;
      const wrong = `sha256:${"ab".repeat(32)}`;
      const error = await assertRejects(
        () =>
          SocketBackend.connect(`socket+tls:127.0.0.1:${server.port}?fp=${wrong}`, {
            policy: POLICY,
            credential: credential("alice"),
          }),
      );
      const message = (error as Error).message;
      assertEquals(message.split("\n").length, 1);
      assertMatch(
        message,
        new RegExp(`fingerprint ${fp}, but the URL pins ${wrong}: `),
      );
      // The URL may be typed (a restore on a new machine, with no backup.lock) or backup.lock's:
      // the advice fits both.
      assertMatch(message, /new fingerprint in the URL's \?fp= .*command line.*backup\.lock/);
      // Without a pin or a CA, nothing is trusted: the URL says which to add.
      await assertRejects(
        () =>
          SocketBackend.connect(`socket+tls:127.0.0.1:${server.port}`, {
            policy: POLICY,
            credential: credential("alice"),
          }),
        /says how to trust the server: add "\?fp=sha256:<hex>" .* or "\?ca=/,
      );
      // The server never saw a byte of wire protocol: no session began.
      assertEquals(logs.filter((l) => /: connected$/.test(l)).length, sessions);
      assertEquals(Deno.readDirSync(nodes.backupDir("alice")).toArray().length, before);
      const reader = await SocketBackupReader.fetch(
        `socket+tls:127.0.0.1:${server.port}?fp=${fp}`,
        5_000,
        credential("alice"),
      );
      try {
        assertEquals(reader.describe().lastVersion, 1);
      } finally {
        reader.close();
      }
    },
    {},
    { tls: true },
  );
});

Deno.test("TLS through a SOCKS5 proxy: the proxy resolves the name and carries only TLS", async () => {
  const proxy = await Microsocks.start();
  try {
    await withServer(
      async ({ server, credential, fingerprint: fp }) => {
        const url =
          `socket+tls:localhost:${server.port}?fp=${fp}&proxy=socks5:127.0.0.1:${proxy.port}`;
        const bob = await SocketBackend.connect(url, {
          policy: POLICY,
          credential: credential("bob"),
        });
        await bob.append(change(1));
        await bob.append(change(2));
        bob.close();
        const reader = await SocketBackupReader.fetch(url, 5_000, credential("bob"));
        try {
          assertEquals(reader.describe().lastVersion, 2);
        } finally {
          reader.close();
        }
        const wrong = url.replace(fp!, `sha256:${"0".repeat(64)}`);
        await assertRejects(
          () => SocketBackend.connect(wrong, { policy: POLICY, credential: credential("bob") }),
          /but the URL pins/,
        );
      },
      {},
      { tls: true },
    );
  } finally {
    await proxy.kill();
  }
});

Deno.test("server start names a node key others may read and serves the others; add-node makes it 0600", async () => {
  const root = Deno.makeTempDirSync({ prefix: "node-key-" });
  try {
    assertEquals(await serverCommand(["add-node", root, "alice"], new BufferedOutput()), 0);
    assertEquals(await serverCommand(["add-node", root, "bob"], new BufferedOutput()), 0);
    const key = `${root}/nodes/alice/key`;
    assertEquals(Deno.statSync(key).mode! & 0o777, 0o600);
    Deno.chmodSync(key, 0o644);
    const exposed = new BufferedOutput();
    const args = [`file://${root}`, "127.0.0.1:0", "--allow-plain"];
    const served = serverCommand(args, exposed, (_, stop) => stop());
    assertEquals(await served, 0);
    assertEquals(
      exposed.stdout[0],
      `error: node alice: node alice's key "${key}" may be read by other users (mode 0644): ` +
        `run chmod 600 "${key}"; it is refused until then`,
    );
    assertMatch(exposed.stdout[1], /^info: serving nodes of /);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
