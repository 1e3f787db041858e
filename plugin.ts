/**
 * The lightningd plugin. lightningd starts it with the lightning dir (the network
 * directory) as its working directory; it reads `backup.lock` there, opens and checks the
 * backup and logs its state before it reads its first message, since `db_write` arrives
 * before `init`.
 *
 * @module
 */
import { BackupPlugin } from "./lib/plugin/backup_plugin.ts";
import { serve, writeTo } from "./lib/plugin/stdio.ts";
import { openAtStart } from "./lib/plugin/startup.ts";

const streams = {
  read: (buffer: Uint8Array) => Deno.stdin.read(buffer),
  writeSync(bytes: Uint8Array) {
    let written = 0;
    while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
  },
};
const send = writeTo(streams);

// Before the first message: db_write arrives before init. A backup that fails the check is
// logged in one line by the plugin, which then refuses every db_write.
const startup = openAtStart(Deno.cwd());
const plugin = new BackupPlugin({ backend: startup.backend, send, now: () => performance.now() });
for (const { level, message } of startup.log) plugin.log(level, message);
try {
  await serve(plugin, streams, () => performance.now());
} finally {
  plugin.close();
}
Deno.exit(0);
