/**
 * The lightningd plugin. lightningd starts it with the lightning dir (the network
 * directory) as its working directory; it reads `backup.lock` there and opens the backup
 * before it reads its first message, since `db_write` arrives before `init`.
 *
 * @module
 */
import { BackupPlugin } from "./lib/plugin/backup_plugin.ts";
import { serve, writeTo } from "./lib/plugin/stdio.ts";
import { readLockFile } from "./lib/backup/lock_file.ts";
import { connectBackend } from "./lib/backends/open.ts";
import type { Backend } from "./lib/backends/backend.ts";
import { retryPolicyFromLock } from "./lib/backends/socket/options.ts";
import type { LogLevel } from "./lib/plugin/jsonrpc.ts";

const streams = {
  read: (buffer: Uint8Array) => Deno.stdin.read(buffer),
  writeSync(bytes: Uint8Array) {
    let written = 0;
    while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
  },
};
const send = writeTo(streams);
/** Log lines from before the plugin exists (file repairs, a server's reconnects). */
const early: [LogLevel, string][] = [];
let log = (level: LogLevel, message: string): void => {
  early.push([level, message]);
};

async function open(): Promise<Backend | { error: string }> {
  try {
    const lock = readLockFile(Deno.cwd());
    return await connectBackend(lock.backend_url, {
      file: { log: (message) => log("unusual", message) },
      socket: {
        policy: retryPolicyFromLock(lock),
        log: (level, message) => log(level, message),
      },
      wait: false,
    });
  } catch (error) {
    return { error: (error as Error).message };
  }
}

const plugin = new BackupPlugin({ backend: await open(), send, now: () => performance.now() });
for (const [level, message] of early) plugin.log(level, message);
log = (level, message) => plugin.log(level, message);
try {
  await serve(plugin, streams, () => performance.now());
} finally {
  plugin.close();
}
Deno.exit(0);
