/**
 * Remote rows: the `db_write` round trip with the backup on our server over loopback, and
 * through a SOCKS5 proxy (Debian's microsocks, when installed), against the file backend in
 * the same run, interleaved message by message; and a restore over the wire against a local
 * restore of the same backup directory.
 *
 * @module
 */
import { launchArgs } from "../lib/cli/launcher.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { CLN_BACKUP_PLUGIN, type PluginCommand } from "./plugin_driver.ts";
import { clnBackupNode, hookWorkload, roundTrip, startPlugin } from "./hook_latency.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { median, summarize } from "./stats.ts";
import { buildRestoreData } from "./restore_data.ts";
import { freePort, spawnListening, spawnServer } from "../tests/support/server_process.ts";

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
function socketNode(dir: string, url: string, netAddress: string): PluginCommand {
  Deno.mkdirSync(dir, { recursive: true });
  writeLockFile(dir, { backend_url: url });
  return {
    args: launchArgs({
      deno: Deno.execPath(),
      plugin: CLN_BACKUP_PLUGIN,
      lightningDir: dir,
      netAddress,
    }),
    lightningDir: dir,
  };
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
    const storage = `${dir}/served`;
    Deno.mkdirSync(dir, { recursive: true });
    const server = await spawnServer(storage, serverPort, "inherit");
    const proxyPort = freePort();
    const proxy = await startMicrosocks(proxyPort);
    const serverUrl = `socket:127.0.0.1:${serverPort}`;
    const plugins = {
      file: await startPlugin(clnBackupNode(`${dir}/file`)),
      socket: await startPlugin(
        socketNode(`${dir}/socket-node`, serverUrl, `127.0.0.1:${serverPort}`),
      ),
    };
    // Through the proxy, to a second storage on the same server process's machine.
    const proxyStorage = `${dir}/served-proxy`;
    const proxiedPort = freePort();
    const proxiedServer = proxy
      ? await spawnServer(proxyStorage, proxiedPort, "inherit")
      : undefined;
    const proxied = proxy
      ? await startPlugin(socketNode(
        `${dir}/proxy-node`,
        `socket:localhost:${proxiedPort}?proxy=socks5:127.0.0.1:${proxyPort}`,
        `127.0.0.1:${proxyPort}`,
      ))
      : undefined;
    const samples: Record<"file" | "socket" | "proxy", number[]> = {
      file: [],
      socket: [],
      proxy: [],
    };
    context.log(
      `remote: ${count} round trips each (file, socket${proxy ? ", socks5" : ""}), interleaved`,
    );
    try {
      for (let i = 0; i < count; i++) {
        const order = i % 2 === 0 ? ["file", "socket", "proxy"] : ["proxy", "socket", "file"];
        for (const name of order) {
          const plugin = name === "proxy" ? proxied : plugins[name as "file" | "socket"];
          if (!plugin) continue;
          samples[name as keyof typeof samples].push(
            await roundTrip(plugin, work.ids[i], work.messages[i]),
          );
        }
      }
    } finally {
      await plugins.file.stop();
      await plugins.socket.stop();
      await proxied?.stop();
      server.kill("SIGTERM");
      await server.status;
      if (proxiedServer) {
        proxiedServer.kill("SIGTERM");
        await proxiedServer.status;
      }
      if (proxy) {
        proxy.kill("SIGKILL");
        await proxy.status;
      }
    }
    const file = summarize(samples.file);
    const rows: Row[] = [];
    const section = "remote: hook round trip";
    const socket = summarize(samples.socket);
    for (const q of ["p50", "p99"] as const) {
      rows.push(row({
        section,
        metric: `socket: loopback, ${q}`,
        value: socket[q],
        unit: "ms",
        reference: { label: "file backend", value: file[q] },
        goal: q === "p50" ? "<= 1.3x" : undefined,
        note: q === "p50" ? "our server in its own process, ACK after fdatasync" : undefined,
      }));
    }
    if (proxy) {
      const socks = summarize(samples.proxy);
      for (const q of ["p50", "p99"] as const) {
        rows.push(row({
          section,
          metric: `socket via microsocks, ${q}`,
          value: socks[q],
          unit: "ms",
          reference: { label: "file backend", value: file[q] },
        }));
      }
    }

    // Restore: a snapshot plus changes, served by a server process, over the wire and locally.
    const changes = context.quick ? 5_000 : 20_000;
    const data = buildRestoreData(
      `${dir}/restore`,
      (context.quick ? 10 : 50) * 1e6,
      [changes],
      context.log,
    );
    const backup = data.backups.get(changes)!;
    const restorePort = freePort();
    const restoreServer = await spawnServer(backup, restorePort, "inherit");
    const rounds = context.quick ? 2 : 3;
    const wire: number[] = [];
    const local: number[] = [];
    const target = `${dir}/restored.sqlite3`;
    context.log(
      `remote: restore of a snapshot + ${changes} changes, wire and local, ${rounds} rounds`,
    );
    try {
      for (let round = 0; round < rounds; round++) {
        wire.push(
          await time(async () => {
            const reader = await SocketBackupReader.fetch(`socket:127.0.0.1:${restorePort}`);
            try {
              restoreBackup(reader, target);
            } finally {
              reader.close();
            }
          }),
        );
        Deno.removeSync(target);
        local.push(
          await time(() => void restoreBackup(new FileBackupReader("file://", backup), target)),
        );
        Deno.removeSync(target);
      }
    } finally {
      restoreServer.kill("SIGTERM");
      await restoreServer.status;
    }
    rows.push(row({
      section: "remote: restore",
      metric: `snapshot + ${changes} changes over the wire`,
      value: median(wire),
      unit: "ms",
      reference: { label: "local restore", value: median(local) },
      goal: "<= 1.2x",
      note: "median of rounds, in this process; the wire restore spools the stream into a " +
        "temporary directory, then restores from it",
    }));
    return {
      rows,
      details: {
        writes: count,
        file_ms: file,
        socket_ms: socket,
        socks5_ms: proxy ? summarize(samples.proxy) : null,
        restore_wire_ms: wire,
        restore_local_ms: local,
      },
    };
  },
};
