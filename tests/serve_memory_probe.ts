/**
 * Probe (run with --v8-flags=--expose-gc): serves `db_write` after `db_write` the way lightningd
 * sends them (the next one only once the last is answered) through the plugin's real serve loop
 * and prints the heap each message leaves behind, in bytes, once the garbage is collected.
 */
import { BackupPlugin } from "../lib/plugin/backup_plugin.ts";
import { serve } from "../lib/plugin/stdio.ts";
import type { Backend, Change } from "../lib/backends/backend.ts";
import { bumpStatement } from "./support/statements.ts";

const total = Number(Deno.args[0] ?? 100_000);
const warmup = 10_000;
const gc = (globalThis as { gc?: () => void }).gc!;
let version = 0;
const backend = {
  url: "file:///probe",
  state: () => ({ version, records: version, tail: undefined }),
  append: (change: Change) => {
    version = change.version;
    return Promise.resolve();
  },
  rewind: () => Promise.resolve(),
  cutTail: () => Promise.resolve(""),
  close: () => {},
} as unknown as Backend;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
let next = 1;
let wake: (() => void) | undefined;
let ready = true;
let heapAtWarmup = 0;
let finish = () => {};
const finished = new Promise<void>((r) => finish = r);
const message = (n: number) =>
  encoder.encode(
    JSON.stringify({
      jsonrpc: "2.0",
      id: `cln:db_write#${n}`,
      method: "db_write",
      params: { data_version: n, writes: [bumpStatement(n - 1)] },
    }) + "\n\n",
  );
const streams = {
  async read(buffer: Uint8Array): Promise<number | null> {
    while (!ready) await new Promise<void>((r) => wake = r);
    if (next > total) {
      await finished;
      return null;
    }
    if (next === warmup) {
      gc();
      heapAtWarmup = Deno.memoryUsage().heapUsed;
    }
    ready = false;
    const bytes = message(next++);
    buffer.set(bytes);
    return bytes.length;
  },
  writeSync(bytes: Uint8Array) {
    const text = decoder.decode(bytes);
    if (text.includes('"result":{"result":"continue"}')) {
      ready = true;
      wake?.();
    } else if (text.includes('"result"')) throw new Error(`unexpected answer ${text}`);
  },
};
const plugin = new BackupPlugin({
  backend,
  send: (m) => streams.writeSync(encoder.encode(JSON.stringify(m))),
  now: () => 0,
});
// Measured while the serve loop still runs (lightningd still connected): one message short.
const done = serve(plugin, streams, () => 0);
while (next <= total || version < total) await new Promise((r) => setTimeout(r, 50));
gc();
const perMessage = (Deno.memoryUsage().heapUsed - heapAtWarmup) / (total - warmup);
console.log(JSON.stringify({ perMessage, version }));
finish();
await done;
await plugin.close();
