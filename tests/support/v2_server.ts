/**
 * A wire v2 server on a fresh root with nodes alice and bob, in the clear or over TLS, and
 * the real plugin backing up to it: shared by the v2 and TLS tests.
 *
 * @module
 */
import { assertEquals } from "./assert.ts";
import { FakeLightningd } from "./fake_lightningd.ts";
import { dumpDatabase } from "./dump.ts";
import { BackupServer, type ServerLimits } from "../../lib/server/server.ts";
import { NodeRegistry } from "../../lib/server/nodes.ts";
import {
  fingerprint as fingerprintOf,
  initTlsIdentity,
  loadTlsIdentity,
  TLS_CERT_NAME,
  TLS_KEY_NAME,
  type TlsIdentity,
} from "../../lib/server/tls_identity.ts";
import { CREDENTIAL_ENV, CREDENTIAL_NAME } from "../../lib/backends/socket/credential.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
import type { NodeCredential } from "../../lib/backends/socket/credential.ts";
import { keyFromText } from "../../lib/wire/handshake.ts";
import { BufferedOutput, makeNodeDir } from "./cli_testing.ts";
import { init } from "../../lib/cli/init.ts";
import { launchArgs, launchPlan } from "../../lib/cli/launcher.ts";

export interface Setup {
  root: string;
  server: BackupServer;
  logs: string[];
  /** `socket:` or, over TLS, `socket+tls:…?fp=…` to the server. */
  url: string;
  nodes: NodeRegistry;
  credential(name: string): NodeCredential;
  /** The certificate's `sha256:<hex>`, over TLS. */
  fingerprint?: string;
}

/**
 * Runs `body` against a fresh server: over TLS with `tls`, its certificate made by `init-tls`
 * or, given `identity`, that one (say, one a test CA issued); its clock `now` when given.
 */
export async function withServer(
  body: (s: Setup) => Promise<void>,
  limits: Partial<ServerLimits> = {},
  { tls = false, identity, maxPayloadBytes, now }: {
    tls?: boolean;
    identity?: TlsIdentity;
    maxPayloadBytes?: number;
    now?: () => number;
  } = {},
): Promise<void> {
  const root = Deno.makeTempDirSync({ prefix: "socket-v2-" });
  const nodes = new NodeRegistry(`${root}/server`);
  const keys = new Map(["alice", "bob"].map((n) => [n, nodes.add(n)]));
  if (identity) {
    Deno.writeTextFileSync(`${nodes.root}/${TLS_KEY_NAME}`, identity.key, { mode: 0o600 });
    Deno.writeTextFileSync(`${nodes.root}/${TLS_CERT_NAME}`, identity.cert);
  }
  const fingerprint = identity
    ? await fingerprintOf(identity.cert)
    : tls
    ? await initTlsIdentity(nodes.root)
    : undefined;
  const logs: string[] = [];
  const server = new BackupServer({
    hostname: "127.0.0.1",
    port: 0,
    log: (level, message) => logs.push(`${level}: ${message}`),
    nodes,
    limits,
    maxPayloadBytes,
    tls: loadTlsIdentity(nodes.root),
    now,
  });
  const credential = (node: string) => ({
    node,
    key: keyFromText(keys.get(node) ?? keys.get("alice")!)!,
    path: `${root}/${node}.credential`,
  });
  const url = fingerprint
    ? `socket+tls:127.0.0.1:${server.port}?fp=${fingerprint}`
    : `socket:127.0.0.1:${server.port}`;
  try {
    await body({ root, server, logs, url, nodes, credential, fingerprint });
  } finally {
    await server.close();
    Deno.removeSync(root, { recursive: true });
  }
}

/** Writes `line` as the node's backup.credential in `dir`, mode 0600 whatever the umask. */
export function writeCredential(dir: string, line: string): void {
  Deno.writeTextFileSync(`${dir}/${CREDENTIAL_NAME}`, line, { mode: 0o600 });
  Deno.chmodSync(`${dir}/${CREDENTIAL_NAME}`, 0o600);
}

/**
 * Adds node `name`, backs up three transactions of the real plugin to `url`, started with
 * the launcher's permissions, and checks a restore over `url` equals the node's database;
 * returns the node's lightning dir.
 */
export async function backUpWithPlugin(
  root: string,
  url: string,
  nodes: NodeRegistry,
  name: string,
): Promise<string> {
  const dir = makeNodeDir("restart");
  writeCredential(dir, JSON.stringify({ node: name, key: nodes.add(name) }));
  const made = new BufferedOutput();
  assertEquals(await init([url, "--lightning-dir", dir], made), 0, made.stderr.join("\n"));
  const plan = launchPlan({ lightningDir: dir, backendUrl: url });
  const lightningd = FakeLightningd.spawn({
    lightningDir: dir,
    command: [plan.deno, ...launchArgs(plan)],
  });
  try {
    await lightningd.getmanifest();
    for (let i = 0; i < 3; i++) {
      const outcome = await lightningd.transaction([`DELETE FROM vars WHERE name = 'n${i}'`]);
      assertEquals(outcome, "committed", lightningd.aborted);
    }
    assertEquals((await lightningd.stop()).code, 0);
  } finally {
    await lightningd.kill().catch(() => {});
  }
  // In a process of its own: the environment is the whole test run's, and other test files
  // run beside this one.
  const restored = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "restore", url, `${root}/restored.sqlite3`],
    env: { [CREDENTIAL_ENV]: `${dir}/${CREDENTIAL_NAME}` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(restored.code, 0, new TextDecoder().decode(restored.stderr));
  assertEquals(
    dumpDatabase(`${root}/restored.sqlite3`),
    dumpDatabase(`${dir}/lightningd.sqlite3`),
  );
  return dir;
}
