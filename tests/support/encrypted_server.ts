/**
 * An encrypted backup on a server process of its own (a root with node alice, served over
 * plain v2 on loopback), made by `init --encrypt` as an operator makes it: shared by the tests
 * of encrypted server backups.
 *
 * @module
 */
import { assertEquals } from "./assert.ts";
import { dumpDatabase } from "./dump.ts";
import { freePort, spawnListening } from "./server_process.ts";
import { PASSPHRASE } from "./encrypted.ts";
import { NodeRegistry } from "../../lib/server/nodes.ts";
import { CREDENTIAL_NAME } from "../../lib/backends/socket/credential.ts";
import type { NodeCredential } from "../../lib/backends/socket/credential.ts";
import { keyFromText } from "../../lib/wire/handshake.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./cli_testing.ts";
import { init } from "../../lib/cli/init.ts";
import { readKeyFile } from "../../lib/crypto/key_file.ts";
import type { DataKey } from "../../lib/crypto/data_key.ts";
import { SocketBackupReader } from "../../lib/backends/socket/reader.ts";
import type { CopiedBackupReader } from "../../lib/backends/socket/copy_reader.ts";
import { restoreBackup } from "../../lib/backup/restore.ts";

import { runBackupCli } from "./backup_cli.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** A server process on a fresh root, node alice added, and her lightning dir (no database). */
export interface EncryptedServer {
  root: string;
  /**
   * Stops the server and starts it again on the same root and port, with `env` added (and
   * `args`, options of `server`).
   */
  restartServer(env: Record<string, string>, args?: string[]): Promise<void>;
  url: string;
  dir: string;
  /** Alice's backup directory on the server. */
  storage: string;
  credential: NodeCredential;
  stop(): Promise<void>;
}

export async function startEncryptedServer(
  database?: Parameters<typeof makeNodeDir>[0],
): Promise<EncryptedServer> {
  const root = Deno.makeTempDirSync({ prefix: "socket-encrypted-" });
  const nodes = new NodeRegistry(`${root}/server`);
  const keyText = nodes.add("alice");
  const port = freePort();
  const start = (env: Record<string, string>, args: string[] = []) =>
    spawnListening("env", [
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Deno.execPath(),
      "run",
      "-A",
      CLI,
      "server",
      `file://${root}/server`,
      `127.0.0.1:${port}`,
      "--log-level",
      "error",
      "--allow-plain",
      ...args,
    ], port);
  let server = await start({});
  const stopServer = async () => {
    try {
      server.kill("SIGTERM");
    } catch {
      // Gone already: it crashed at a step, as asked.
    }
    await server.status;
    await server.stderr.cancel();
  };
  const dir = makeNodeDir(database);
  const credentialPath = `${dir}/${CREDENTIAL_NAME}`;
  Deno.writeTextFileSync(credentialPath, JSON.stringify({ node: "alice", key: keyText }), {
    mode: 0o600,
  });
  Deno.chmodSync(credentialPath, 0o600);
  return {
    root,
    url: `socket:127.0.0.1:${port}`,
    dir,
    storage: `${root}/server/nodes/alice/backup`,
    credential: { node: "alice", key: keyFromText(keyText)!, path: credentialPath },
    restartServer: async (env, args) => {
      await stopServer();
      server = await start(env, args);
    },
    stop: async () => {
      await stopServer();
      removeNodeDir(dir);
      Deno.removeSync(root, { recursive: true });
    },
  };
}

/** `init --encrypt` of alice's (empty) node onto the server, with {@linkcode PASSPHRASE}. */
export async function initEncrypted(s: EncryptedServer): Promise<DataKey> {
  const passphrase = `${s.root}/passphrase`;
  Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
  const output = new BufferedOutput();
  const code = await init(
    [s.url, "--lightning-dir", s.dir, "--encrypt", "--passphrase-file", passphrase],
    output,
  );
  assertEquals(code, 0, output.text);
  return (await readKeyFile(s.dir))!;
}

/** The dump of alice's backup fetched from the server and restored here with `key` (if any). */
export async function restoredWith(
  s: EncryptedServer,
  key: DataKey | undefined,
  toVersion?: number,
): Promise<string> {
  const reader = await SocketBackupReader.fetch(s.url, 5_000, s.credential, s.root);
  const target = `${s.root}/restored-${crypto.randomUUID()}.sqlite3`;
  try {
    (reader as CopiedBackupReader).local.key = key;
    restoreBackup(reader, target, { toVersion });
    return dumpDatabase(target);
  } finally {
    reader.close();
    Deno.removeSync(target);
  }
}

/**
 * Runs `backup-cli` (the CLI with the permissions its command needs only) in a process of its
 * own, from this run's Deno cache (which holds the crypto libraries: runBackupCli).
 */
export async function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, out, err } = await runBackupCli(args, env);
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}
