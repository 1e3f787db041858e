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
import { openBackend } from "./lib/backends/open.ts";
import type { Backend } from "./lib/backends/backend.ts";

const streams = {
  read: (buffer: Uint8Array) => Deno.stdin.read(buffer),
  writeSync(bytes: Uint8Array) {
    let written = 0;
    while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
  },
};
const send = writeTo(streams);
const repairs: string[] = [];

function open(): Backend | { error: string } {
  try {
    const lock = readLockFile(Deno.cwd());
    return openBackend(lock.backend_url, { log: (message) => repairs.push(message) });
  } catch (error) {
    return { error: (error as Error).message };
  }
}

const plugin = new BackupPlugin({ backend: open(), send, now: () => performance.now() });
for (const message of repairs) plugin.log("unusual", message);
try {
  await serve(plugin, streams, () => performance.now());
} finally {
  plugin.close();
}
Deno.exit(0);
