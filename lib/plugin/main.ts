/**
 * The plugin process: opens the backup named by `backup.lock` in the working directory (the
 * lightning dir lightningd starts it in) before it reads its first message, since `db_write`
 * arrives before `init`, then serves stdin and stdout until `shutdown` or end of input.
 *
 * @module
 */
import { BackupPlugin, type PluginContext } from "./backup_plugin.ts";
import { serve, writeTo } from "./stdio.ts";
import { readLockFile } from "../backup/lock_file.ts";
import { openBackend } from "../backends/open.ts";
import type { Backend } from "../backends/backend.ts";

const streams = {
  read: (buffer: Uint8Array) => Deno.stdin.read(buffer),
  writeSync(bytes: Uint8Array) {
    let written = 0;
    while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
  },
};

function open(repairs: string[]): Backend | { error: string } {
  try {
    const lock = readLockFile(Deno.cwd());
    return openBackend(lock.backend_url, { log: (message) => repairs.push(message) });
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/**
 * Runs the plugin until it should exit. `configure` is for test entry points only: it may
 * change the context (stand-in methods, another option table, a hold) before the plugin
 * starts.
 */
export async function runPlugin(
  configure: (context: PluginContext) => PluginContext = (context) => context,
): Promise<void> {
  const repairs: string[] = [];
  const now = () => performance.now();
  const plugin = new BackupPlugin(
    configure({ backend: open(repairs), send: writeTo(streams), now }),
  );
  for (const message of repairs) plugin.log("unusual", message);
  try {
    await serve(plugin, streams, now);
  } finally {
    await plugin.close();
  }
}
