/**
 * The plugin process: opens and checks the backup named by `backup.lock` in the working
 * directory (the lightning dir lightningd starts it in) and logs its state before it reads
 * its first message, since `db_write` arrives before `init`; then serves stdin and stdout
 * until `shutdown` or end of input.
 *
 * @module
 */
import { BackupPlugin, type PluginContext } from "./backup_plugin.ts";
import { serve, writeTo } from "./stdio.ts";
import { openAtStart } from "./startup.ts";

const streams = {
  read: (buffer: Uint8Array) => Deno.stdin.read(buffer),
  writeSync(bytes: Uint8Array) {
    let written = 0;
    while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
  },
};

/**
 * Runs the plugin until it should exit. `configure` is for test entry points only: it may
 * change the context (stand-in methods, another option table, a hold) before the plugin
 * starts.
 */
export async function runPlugin(
  configure: (context: PluginContext) => PluginContext = (context) => context,
): Promise<void> {
  const now = () => performance.now();
  // A backup that fails the check is logged in one line by the plugin, which then refuses
  // every db_write.
  const startup = openAtStart(Deno.cwd());
  const plugin = new BackupPlugin(
    configure({ backend: startup.backend, send: writeTo(streams), now }),
  );
  for (const { level, message } of startup.log) plugin.log(level, message);
  try {
    await serve(plugin, streams, now);
  } finally {
    await plugin.close();
  }
}
