/**
 * `socket:` through a real SOCKS5 proxy (Debian's microsocks): a host name the proxy resolves
 * (address type 3, as for a .onion through Tor), a target that refuses, and a proxy that dies.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { Microsocks } from "./support/microsocks.ts";
import { startServer, type TestServer } from "./support/wire_server.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { bumpStatement } from "./support/statements.ts";

const FAST = { ...DEFAULT_RETRY_POLICY, timeoutMs: 2000, retryDelayMs: 50, retries: 2 };

async function withProxy(body: (proxy: Microsocks, server: TestServer) => Promise<void>) {
  const root = Deno.makeTempDirSync({ prefix: "socks5-" });
  const server = startServer(`${root}/served`);
  const proxy = await Microsocks.start();
  try {
    await body(proxy, server);
  } finally {
    await proxy.kill();
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
}

const change = (version: number) => ({ version, statements: [bumpStatement(version - 1)] });

Deno.test("a host name goes to the proxy unresolved, and changes and restores go through", async () => {
  await withProxy(async (proxy, server) => {
    const url = `socket:localhost:${server.server.port}?proxy=socks5:127.0.0.1:${proxy.port}`;
    const backend = await SocketBackend.connect(url, { policy: FAST });
    assertEquals(
      backend.destination,
      `localhost:${server.server.port} through SOCKS5 proxy 127.0.0.1:${proxy.port}`,
    );
    await backend.append(change(1));
    await backend.append(change(2));
    backend.close();
    const reader = await SocketBackupReader.fetch(url);
    try {
      assertEquals(reader.describe().lastVersion, 2);
    } finally {
      reader.close();
    }
  });
});

Deno.test("a target the proxy cannot reach: the proxy's refusal, in one line", async () => {
  await withProxy(async (proxy) => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = closed.addr.port;
    closed.close();
    await assertRejects(
      () =>
        SocketBackend.connect(`socket:127.0.0.1:${port}?proxy=socks5:127.0.0.1:${proxy.port}`, {
          policy: { ...FAST, retries: 0 },
        }),
      new RegExp(`the proxy could not connect to 127\\.0\\.0\\.1:${port}: `),
    );
  });
});

Deno.test("the proxy dies: the plugin reconnects once it is back, or gives up in time", async () => {
  await withProxy(async (proxy, server) => {
    const url = `socket:localhost:${server.server.port}?proxy=socks5:127.0.0.1:${proxy.port}`;
    const logs: string[] = [];
    const backend = await SocketBackend.connect(url, {
      // Patient enough to outlast a slow proxy start on a loaded machine.
      policy: { ...FAST, retryDelayMs: 300, retries: 4 },
      log: (_, message) => logs.push(message),
    });
    await backend.append(change(1));
    await proxy.kill();
    // Back on the same port while the plugin waits to reconnect.
    const back = (async () => {
      await new Promise((r) => setTimeout(r, 100));
      return await Microsocks.start(proxy.port);
    })();
    await backend.append(change(2));
    const revived = await back;
    const reconnects = backend.state().connection!.reconnects;
    assert(reconnects >= 1 && reconnects <= 4, `${reconnects} reconnects`);
    assertMatch(
      logs.join("\n"),
      /sending change 2 to localhost:\d+ through SOCKS5 proxy .*reconnect 1 of 4/,
    );
    await revived.kill();
    await assertRejects(
      () => backend.append(change(3)),
      /sending change 3 .* failed, and 4 reconnects over/,
    );
    assertEquals(backend.state().connection?.state, "failed");
    backend.close();
  });
});
