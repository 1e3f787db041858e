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
import { compactionFor } from "./compaction_for.ts";
import type { LogLevel } from "./jsonrpc.ts";
import { readableEnv } from "../fs/readable_env.ts";

const streams = {
  read: (buffer: Uint8Array) => Deno.stdin.read(buffer),
  writeSync(bytes: Uint8Array) {
    let written = 0;
    while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
  },
};

/**
 * Test seams: smaller log segments (so tests see rolls and compactions on recorded runs),
 * smaller S3 packs. Read only where the environment may be read; the launcher grants no
 * environment access.
 */
function testNumber(name: string): number | undefined {
  const value = readableEnv.get(name);
  return value === undefined ? undefined : Number(value);
}

/**
 * Runs the plugin until it should exit. `configure` is for test entry points only: it may
 * change the context (stand-in methods, another option table, a hold) before the plugin
 * starts.
 */
export async function runPlugin(
  configure: (context: PluginContext) => PluginContext = (context) => context,
): Promise<void> {
  const now = () => performance.now();
  // Before the first message: db_write arrives before init. A backup that fails the check is
  // logged in one line, and the plugin then refuses every db_write.
  // A server's backup logs as it connects, maybe before the plugin exists: kept till then.
  const early: { level: LogLevel; message: string }[] = [];
  let remoteLog: (level: LogLevel, message: string) => void = (level, message) => {
    early.push({ level, message });
  };
  // Ends the backend's waits when the plugin closes: it never outlives lightningd.
  const lifetime = new AbortController();
  const startup = await openAtStart(Deno.cwd(), {
    signal: lifetime.signal,
    segmentBytes: testNumber("CLN_BACKUP_TEST_SEGMENT_BYTES"),
    packEvery: testNumber("CLN_BACKUP_TEST_S3_PACK_EVERY"),
    remoteLog: (level, message) => remoteLog(level, message),
  });
  const backend = startup.backend;
  const compaction = "error" in backend ? undefined : compactionFor(
    backend,
    Deno.cwd(),
    (level, message) => remoteLog(level, message),
    startup.remote,
  );
  const plugin = new BackupPlugin(
    configure({
      backend,
      setup: startup.setup,
      send: writeTo(streams),
      now,
      compaction,
      lifetime,
      stderr: (line) => console.error(line),
    }),
  );
  for (const { level, message } of [...startup.log, ...early]) plugin.log(level, message);
  remoteLog = (level, message) => plugin.log(level, message);
  try {
    await serve(plugin, streams, now);
  } finally {
    await plugin.close();
  }
}
