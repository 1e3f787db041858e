/**
 * Remote rows: the `db_write` round trip with the backup on our server over loopback, in wire
 * v1 and v2, and in v2 through a SOCKS5 proxy (Debian's microsocks, when installed), against
 * the file backend in the same run, interleaved message by message; and a restore over the
 * wire, in v2 and v1, against a local restore of the same backup directory.
 *
 * @module
 */
import { launchArgs, launchPlan, lockLaunchPlan } from "../lib/cli/launcher.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { init } from "../lib/cli/init.ts";
import { BufferedOutput } from "../tests/support/cli_testing.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { CLN_BACKUP_PLUGIN, type PluginCommand, type PluginProcess } from "./plugin_driver.ts";
import { clnBackupNode, hookWorkload, roundTrip, startPlugin } from "./hook_latency.ts";
import { settleDisk } from "./machine.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { median, summarize } from "./stats.ts";
import { buildRestoreData } from "./restore_data.ts";
import { freePort, spawnListening, spawnServerProcess } from "../tests/support/server_process.ts";
import { NodeRegistry } from "../lib/server/nodes.ts";
import { initTlsIdentity, TLS_CERT_NAME } from "../lib/server/tls_identity.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { CREDENTIAL_NAME } from "../lib/backends/socket/credential.ts";
import { keyFromText } from "../lib/wire/handshake.ts";

/**
 * A server process on a root of nodes, serving node `v1` (if any) over v1 too; over TLS
 * when the root has a certificate, else in the clear.
 */
export function spawnRootServer(
  root: string,
  port: number,
  v1Node?: string,
): Promise<Deno.ChildProcess> {
  const v1 = v1Node ? ["--allow-v1", "--v1-node", v1Node] : [];
  const plain = existsSync(`${root}/${TLS_CERT_NAME}`) ? [] : ["--allow-plain"];
  return spawnServerProcess(`file://${root}`, port, [...v1, ...plain], "inherit");
}

/** Adds node `name` to `root` and writes its credential into `lightningDir`. */
function addNode(root: string, name: string, lightningDir: string): string {
  const key = new NodeRegistry(root).add(name);
  Deno.mkdirSync(lightningDir, { recursive: true });
  Deno.writeTextFileSync(
    `${lightningDir}/${CREDENTIAL_NAME}`,
    JSON.stringify({ node: name, key }),
    { mode: 0o600 },
  );
  return key;
}

async function startMicrosocks(port: number): Promise<Deno.ChildProcess | undefined> {
  try {
    return await spawnListening(
      "microsocks",
      ["-i", "127.0.0.1", "-p", String(port)],
      port,
      "null",
    );
  } catch {
    return undefined;
  }
}

/** A lightning dir whose backup.lock names `url`, launched with the launcher's flags. */
function socketNode(dir: string, url: string): PluginCommand {
  Deno.mkdirSync(dir, { recursive: true });
  writeLockFile(dir, { backend_url: url });
  return {
    args: launchArgs(launchPlan({ lightningDir: dir, backendUrl: url, plugin: CLN_BACKUP_PLUGIN })),
    lightningDir: dir,
  };
}

type Path = "file" | "v1" | "v2" | "tls" | "proxy" | "enc";

/**
 * A node whose backup on the server `url` is encrypted (`init --encrypt`, the plugin sealing
 * each change), launched as its launcher starts it.
 */
async function encryptedSocketNode(dir: string, url: string): Promise<PluginCommand> {
  const passphrase = `${dir}.passphrase`;
  Deno.writeTextFileSync(passphrase, "bench passphrase, not a secret\n", { mode: 0o600 });
  const output = new BufferedOutput();
  const args = [url, "--lightning-dir", dir, "--encrypt", "--passphrase-file", passphrase];
  if (await init(args, output) !== 0) throw new Error(output.text);
  const plan = lockLaunchPlan(dir, readLockFile(dir), { plugin: CLN_BACKUP_PLUGIN });
  return { args: launchArgs(plan), lightningDir: dir };
}

function time(fn: () => void | Promise<void>): Promise<number> {
  const start = performance.now();
  return Promise.resolve(fn()).then(() => performance.now() - start);
}

export const remote: Section = {
  name: "remote",
  async run(context: BenchContext): Promise<SectionResult> {
    const count = context.quick ? 1_000 : 5_000;
    const dir = `${context.tmp}/remote`;
    const work = hookWorkload(count);
    const serverPort = freePort();
    const root = `${dir}/server`;
    Deno.mkdirSync(dir, { recursive: true });
    new NodeRegistry(root).add("v1");
    const proxyDir = `${dir}/proxy-node`;
    // One server process, as an operator runs it: nodes over v2, node v1 over v1.
    const server = await spawnRootServer(root, serverPort, "v1");
    // Plain v2 and TLS, compared with each other, each have a server process of their own: a
    // process that also serves other paths stays warm and flatters its path (measured: TLS
    // +0.4 to +0.56 ms over a plain v2 sharing its server with v1 and the proxy, +0.2 to +0.29
    // ms over one alone).
    const v2Root = `${dir}/v2-server`;
    const v2Dir = `${dir}/v2-node`;
    addNode(v2Root, "v2", v2Dir);
    const v2Port = freePort();
    const v2Server = await spawnRootServer(v2Root, v2Port);
    // An encrypted backup on a server of its own too, compared with plain v2.
    const encRoot = `${dir}/enc-server`;
    const encDir = `${dir}/enc-node`;
    addNode(encRoot, "enc", encDir);
    const encPort = freePort();
    const encServer = await spawnRootServer(encRoot, encPort);
    const proxyPort = freePort();
    const proxy = await startMicrosocks(proxyPort);
    if (proxy) addNode(root, "proxied", proxyDir);
    // A server on a root with a TLS certificate: node tls over TLS, pinned.
    const tlsRoot = `${dir}/tls-server`;
    const tlsDir = `${dir}/tls-node`;
    addNode(tlsRoot, "tls", tlsDir);
    const fp = await initTlsIdentity(tlsRoot);
    const tlsPort = freePort();
    const tlsServer = await spawnRootServer(tlsRoot, tlsPort);
    const serverUrl = `socket:127.0.0.1:${serverPort}`;
    const plugins: Partial<Record<Path, PluginProcess>> = {
      file: await startPlugin(clnBackupNode(`${dir}/file`)),
      v1: await startPlugin(socketNode(`${dir}/v1-node`, serverUrl)),
      v2: await startPlugin(socketNode(v2Dir, `socket:127.0.0.1:${v2Port}`)),
      tls: await startPlugin(
        socketNode(tlsDir, `socket+tls:127.0.0.1:${tlsPort}?fp=${fp}`),
      ),
      enc: await startPlugin(
        await encryptedSocketNode(encDir, `socket:127.0.0.1:${encPort}`),
      ),
      proxy: proxy
        ? await startPlugin(socketNode(
          proxyDir,
          `socket:localhost:${serverPort}?proxy=socks5:127.0.0.1:${proxyPort}`,
        ))
        : undefined,
    };
    const samples: Record<Path, number[]> = {
      file: [],
      v1: [],
      v2: [],
      tls: [],
      proxy: [],
      enc: [],
    };
    const paths = (Object.keys(samples) as Path[]).filter((p) => plugins[p]);
    context.log(`remote: ${count} round trips each (${paths.join(", ")}), interleaved`);
    try {
      for (let i = 0; i < count; i++) {
        const order = i % 2 === 0 ? paths : [...paths].reverse();
        for (const name of order) {
          samples[name].push(await roundTrip(plugins[name]!, work.ids[i], work.messages[i]));
        }
      }
    } finally {
      for (const plugin of Object.values(plugins)) await plugin?.stop();
      for (const process of [server, v2Server, tlsServer, encServer]) {
        process.kill("SIGTERM");
        await process.status;
      }
      if (proxy) {
        proxy.kill("SIGKILL");
        await proxy.status;
      }
    }
    const file = summarize(samples.file);
    const rows: Row[] = [];
    const section = "remote: hook round trip";
    const labels: Record<Exclude<Path, "file">, string> = {
      v1: "socket v1: loopback",
      v2: "socket v2: loopback",
      tls: "socket v2 over TLS: loopback",
      proxy: "socket v2 via microsocks",
      enc: "socket v2, encrypted (sealed by the node): loopback",
    };
    for (const path of paths) {
      if (path === "file") continue;
      const summary = summarize(samples[path]);
      for (const q of ["p50", "p99"] as const) {
        rows.push(row({
          section,
          metric: `${labels[path]}, ${q}`,
          value: summary[q],
          unit: "ms",
          reference: path === "tls" || path === "enc"
            ? { label: "plain v2", value: summarize(samples.v2)[q] }
            : { label: "file backend", value: file[q] },
          goal: q === "p50" && path !== "proxy" && path !== "tls" && path !== "enc"
            ? "<= 1.3x"
            : undefined,
          note: q === "p50" && path === "v1"
            ? "our server in its own process, ACK after fdatasync"
            : q === "p99" && path === "proxy"
            ? "microsocks relays 1 KiB reads without TCP_NODELAY: a packet over 1 KiB waits " +
              "for the server's delayed ACK (~40 ms)"
            : undefined,
        }));
      }
    }
    const [tls, v2] = [summarize(samples.tls), summarize(samples.v2)];
    rows.push(row({
      section,
      metric: "TLS overhead over plain v2, p50",
      value: tls.p50 - v2.p50,
      unit: "ms",
      goal: "<= 0.2 ms",
      note: "TLS 1.3, ECDSA P-256 certificate pinned by fingerprint (node:tls client)",
    }));

    // Restore: a snapshot plus changes, served by a server process, over the wire and locally.
    const changes = context.quick ? 5_000 : 20_000;
    const data = buildRestoreData(
      `${dir}/restore`,
      (context.quick ? 10 : 50) * 1e6,
      [changes],
      context.log,
    );
    const backup = data.backups.get(changes)!;
    // The same backup served as node "r" of a root, to v2 and (as the v1 node) to v1.
    const restoreRoot = `${dir}/restore-server`;
    const registry = new NodeRegistry(restoreRoot);
    const credential = {
      node: "r",
      key: keyFromText(registry.add("r"))!,
      path: `${restoreRoot}/r.credential`,
    };
    Deno.renameSync(backup, registry.backupDir("r"));
    const served = registry.backupDir("r");
    const restorePort = freePort();
    const restoreServer = await spawnRootServer(restoreRoot, restorePort, "r");
    const rounds = context.quick ? 2 : 3;
    const times: Record<"v2" | "v1" | "local", number[]> = { v2: [], v1: [], local: [] };
    /** Of each wire restore, the part spent fetching the backup before restoring it. */
    const fetchMs: Record<"v2" | "v1", number[]> = { v2: [], v1: [] };
    const target = `${dir}/restored.sqlite3`;
    const url = `socket:127.0.0.1:${restorePort}`;
    context.log(
      `remote: restore of a snapshot + ${changes} changes, v2, v1 and local, ${rounds} rounds`,
    );
    const overWire = async (withCredential: boolean) => {
      const started = performance.now();
      const reader = await SocketBackupReader.fetch(
        url,
        undefined,
        withCredential ? credential : undefined,
      );
      fetchMs[withCredential ? "v2" : "v1"].push(performance.now() - started);
      try {
        restoreBackup(reader, target);
      } finally {
        reader.close();
      }
    };
    try {
      for (let round = 0; round < rounds; round++) {
        await settleDisk();
        times.v2.push(await time(() => overWire(true)));
        Deno.removeSync(target);
        times.v1.push(await time(() => overWire(false)));
        Deno.removeSync(target);
        times.local.push(
          await time(() => void restoreBackup(new FileBackupReader("file://", served), target)),
        );
        Deno.removeSync(target);
      }
    } finally {
      restoreServer.kill("SIGTERM");
      await restoreServer.status;
    }
    for (const wire of ["v2", "v1"] as const) {
      rows.push(row({
        section: "remote: restore",
        metric: `snapshot + ${changes} changes over wire ${wire}`,
        value: median(times[wire]),
        unit: "ms",
        reference: { label: "local restore", value: median(times.local) },
        goal: wire === "v2" ? "<= 1.2x" : undefined,
        note: wire === "v2"
          ? "median of rounds, in this process; v2 copies the backup's files into a " +
            "temporary directory and restores from it; v1 spools re-encoded records"
          : undefined,
      }));
    }
    return {
      rows,
      details: {
        writes: count,
        file_ms: file,
        socket_v1_ms: summarize(samples.v1),
        socket_v2_ms: summarize(samples.v2),
        socks5_v2_ms: proxy ? summarize(samples.proxy) : null,
        restore_v2_ms: times.v2,
        fetch_v2_ms: fetchMs.v2,
        fetch_v1_ms: fetchMs.v1,
        restore_v1_ms: times.v1,
        restore_local_ms: times.local,
      },
    };
  },
};
