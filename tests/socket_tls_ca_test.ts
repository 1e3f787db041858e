/**
 * `socket+tls:…?ca=PATH`: trusting the CA that issued the server's certificate instead of
 * pinning it. A certificate the CA issued for the URL's host is accepted, by the plugin
 * under its launcher's permissions and backup-cli under its own too; one from another CA, one for another name, and the
 * self-signed one `init-tls` makes are refused in one line before a byte of the protocol
 * is sent; also through a real SOCKS5 proxy.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { backUpWithPlugin, withServer } from "./support/v2_server.ts";
import { makeCa } from "./support/test_ca.ts";
import { Microsocks } from "./support/microsocks.ts";
import { bumpStatement } from "./support/statements.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import {
  CREDENTIAL_ENV,
  CREDENTIAL_NAME,
  type NodeCredential,
  readCredential,
} from "../lib/backends/socket/credential.ts";
import { runBackupCli } from "./support/backup_cli.ts";
import { removeNodeDir } from "./support/cli_testing.ts";
import { launchArgs, launchPlan } from "../lib/cli/launcher.ts";

const POLICY = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 };
const change = (version: number) => ({ version, statements: [bumpStatement(version - 1)] });

const ca = await makeCa("cln-backup test CA");
const otherCa = await makeCa("another CA");
const dir = Deno.makeTempDirSync({ prefix: "tls-ca-" });
const CA_FILE = `${dir}/ca.pem`;
const OTHER_CA_FILE = `${dir}/other-ca.pem`;
Deno.writeTextFileSync(CA_FILE, ca.cert);
Deno.writeTextFileSync(OTHER_CA_FILE, otherCa.cert);
const localIdentity = await ca.issue(["localhost", "127.0.0.1"]);
const elsewhereIdentity = await ca.issue(["backup.example.org"]);
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

/** Connects node `node` as a writer to `url`, appends `versions`, and closes. */
async function write(url: string, credential: NodeCredential, versions: number[]): Promise<void> {
  const backend = await SocketBackend.connect(url, { policy: POLICY, credential });
  try {
    for (const version of versions) await backend.append(change(version));
  } finally {
    backend.close();
  }
}

/** Asserts `url` is refused in one line matching `why`, and the server saw no session. */
async function refused(
  url: string,
  credential: NodeCredential,
  logs: string[],
  why: RegExp,
): Promise<void> {
  const sessions = logs.filter((l) => /: connected$/.test(l)).length;
  const error = await assertRejects(() =>
    SocketBackend.connect(url, { policy: POLICY, credential })
  );
  const message = (error as Error).message;
  assertEquals(message.split("\n").length, 1, message);
  assertMatch(message, why);
  await assertRejects(() => SocketBackupReader.fetch(url, 5_000, credential), why);
  assertEquals(logs.filter((l) => /: connected$/.test(l)).length, sessions);
}

Deno.test("a certificate the CA issued for the host: init, the plugin under its launcher, restore, status, verify and compaction use ca=", async () => {
  await withServer(
    async ({ root, server, nodes }) => {
      const url = `socket+tls:127.0.0.1:${server.port}?ca=${CA_FILE}`;
      const node = await backUpWithPlugin(root, url, nodes, "carol");
      try {
        // The launcher lets the plugin read the CA file, and nothing else new.
        const plan = launchPlan({ lightningDir: node, backendUrl: url });
        const read = launchArgs(plan).find((a) => a.startsWith("--allow-read="))!;
        assertEquals(read.split(",").at(-1), CA_FILE);
        assertEquals(read.split(",").length, 4);
        // status and verify with backup-cli's permissions, which grant read on the CA file.
        const env = { [CREDENTIAL_ENV]: `${node}/${CREDENTIAL_NAME}` };
        const described = await runBackupCli(["status", url], env);
        assertEquals(described.code, 0, described.err.join("\n"));
        assertMatch(described.out.join("\n"), /versions: +\d+ to \d+/);
        const verified = await runBackupCli(["verify", url], env);
        assertEquals(verified.code, 0, verified.err.join("\n"));
        assertMatch(verified.out[0], /^OK: .* passing SQLite's integrity check$/);
        // A compaction on the server, asked for on a connection of its own.
        const credential = readCredential(`${node}/${CREDENTIAL_NAME}`);
        const backend = await SocketBackend.connect(url, { policy: POLICY, credential });
        try {
          const stats = await backend.compactOnServer();
          assert(stats.after.version_count <= stats.before.version_count, JSON.stringify(stats));
        } finally {
          backend.close();
        }
      } finally {
        removeNodeDir(node);
      }
    },
    {},
    { identity: localIdentity },
  );
});

Deno.test("another CA's certificate, another name, a self-signed one, or no readable CA file: refused in one line", async () => {
  const bad = `socket+tls:127.0.0.1:PORT?ca=${OTHER_CA_FILE}`;
  await withServer(
    async ({ server, credential, logs, nodes }) => {
      const good = `socket+tls:127.0.0.1:${server.port}?ca=${CA_FILE}`;
      await write(good, credential("alice"), [1]);
      const files = Deno.readDirSync(nodes.backupDir("alice")).toArray().length;
      await refused(
        bad.replace("PORT", String(server.port)),
        credential("alice"),
        logs,
        /TLS certificate of 127\.0\.0\.1:\d+ is not trusted \(.*\): it must be issued for 127\.0\.0\.1 by a CA in ".*other-ca\.pem"/,
      );
      await refused(
        good.replace(CA_FILE, `${dir}/missing.pem`),
        credential("alice"),
        logs,
        /cannot read the CA certificates ".*missing\.pem" the URL names .*: put the PEM file there/,
      );
      assertEquals(Deno.readDirSync(nodes.backupDir("alice")).toArray().length, files);
      const reader = await SocketBackupReader.fetch(good, 5_000, credential("alice"));
      try {
        assertEquals(reader.describe().lastVersion, 1);
      } finally {
        reader.close();
      }
    },
    {},
    { identity: localIdentity },
  );
  // Issued by the CA, but for another host name than the URL's.
  await withServer(
    async ({ server, credential, logs }) => {
      await refused(
        `socket+tls:127.0.0.1:${server.port}?ca=${CA_FILE}`,
        credential("alice"),
        logs,
        /is not trusted \(.*(altnames|match).*\): it must be issued for 127\.0\.0\.1/i,
      );
    },
    {},
    { identity: elsewhereIdentity },
  );
  // The self-signed certificate init-tls makes chains to no CA.
  await withServer(
    async ({ server, credential, logs, fingerprint }) => {
      assert(fingerprint);
      await refused(
        `socket+tls:localhost:${server.port}?ca=${CA_FILE}`,
        credential("alice"),
        logs,
        /is not trusted \(.*\): it must be issued for localhost by a CA in/,
      );
      await write(`socket+tls:localhost:${server.port}?fp=${fingerprint}`, credential("alice"), [
        1,
      ]);
    },
    {},
    { tls: true },
  );
});

Deno.test("ca= through a SOCKS5 proxy: TLS on the proxied stream, the name checked there too", async () => {
  const proxy = await Microsocks.start();
  try {
    const via = `&proxy=socks5:127.0.0.1:${proxy.port}`;
    await withServer(
      async ({ server, credential }) => {
        const url = `socket+tls:localhost:${server.port}?ca=${CA_FILE}${via}`;
        await write(url, credential("bob"), [1, 2]);
        const reader = await SocketBackupReader.fetch(url, 5_000, credential("bob"));
        try {
          assertEquals(reader.describe().lastVersion, 2);
        } finally {
          reader.close();
        }
        await assertRejects(
          () =>
            SocketBackend.connect(url.replace(CA_FILE, OTHER_CA_FILE), {
              policy: POLICY,
              credential: credential("bob"),
            }),
          /is not trusted .*other-ca\.pem/,
        );
      },
      {},
      { identity: localIdentity },
    );
    await withServer(
      async ({ server, credential, logs }) => {
        await refused(
          `socket+tls:localhost:${server.port}?ca=${CA_FILE}${via}`,
          credential("bob"),
          logs,
          /is not trusted \(.*\): it must be issued for localhost/,
        );
      },
      {},
      { identity: elsewhereIdentity },
    );
  } finally {
    await proxy.kill();
  }
});
