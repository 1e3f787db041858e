/**
 * Row 4, the plugin's footprint: time from spawn to the `getmanifest` answer (median of
 * several spawns, after one untimed spawn that fills Deno's module cache), and resident
 * memory once started and after the hook rows' writes, each beside the null plugin's. With
 * `--million`, the same cln-backup process goes on to a million writes, generated as they
 * are sent, and its memory then is set against its memory after the first ones.
 *
 * @module
 */
import { clnBackupNode, hookWorkload, roundTrip, startPlugin } from "./hook_latency.ts";
import { nullPluginCommand, type PluginCommand, PluginProcess } from "./plugin_driver.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { median, MiB } from "./stats.ts";
import { dbWriteMessage, Workload } from "./workload.ts";

/** Spawns, waits for the `getmanifest` answer, stops; returns the ms to the answer. */
async function startupMs(command: PluginCommand): Promise<number> {
  const plugin = PluginProcess.spawn(command);
  const answer = await plugin.getmanifest();
  const ms = answer.at - plugin.spawnedAt;
  const status = await plugin.stop();
  if (!status.success) throw new Error(`plugin exited with ${status.code}`);
  return ms;
}

interface Memory {
  startedKiB: number;
  afterKiB: number;
  /**
   * The private part of `afterKiB` (RssAnon); the rest is RssFile (pages of the deno binary
   * and other mapped files that the process has touched, clean and shared) and RssShmem.
   */
  anonAfterKiB: number;
  peakKiB: number;
  /** After `longRun` writes, when asked for. */
  long?: {
    writes: number;
    afterKiB: number;
    anonAfterKiB: number;
    peakKiB: number;
    seconds: number;
    /** VmRSS every 100,000 writes: whether it grows with writes or steps with compactions. */
    samplesKiB: number[];
  };
}

const encoder = new TextEncoder();

/** Sends writes `from` to `to` (exclusive) of the hook rows' workload, made as they go. */
async function sendGenerated(
  plugin: PluginProcess,
  from: number,
  to: number,
  log: (m: string) => void,
  samplesKiB: number[],
) {
  const workload = new Workload({ seed: 5, bigEvery: 7, fromVersion: 0, firstKey: 1_000 });
  for (let i = 0; i < from; i++) workload.next();
  for (let i = from; i < to; i++) {
    const id = `cln:db_write#${i + 1}`;
    await roundTrip(plugin, id, encoder.encode(dbWriteMessage(id, workload.next())));
    if ((i + 1) % 100_000 === 0) {
      samplesKiB.push(plugin.memoryKiB("VmRSS"));
      log(`footprint: ${i + 1} writes, VmRSS ${Math.round(samplesKiB.at(-1)! / 1024)} MiB`);
    }
  }
}

/** Resident memory once started, after `count` writes, and after `longRun` when given. */
async function memoryAfterWrites(
  command: PluginCommand,
  count: number,
  longRun?: { writes: number; log: (message: string) => void },
): Promise<Memory> {
  const work = hookWorkload(count);
  const plugin = await startPlugin(command);
  try {
    const startedKiB = plugin.memoryKiB("VmRSS");
    for (let i = 0; i < count; i++) await roundTrip(plugin, work.ids[i], work.messages[i]);
    const memory: Memory = {
      startedKiB,
      afterKiB: plugin.memoryKiB("VmRSS"),
      anonAfterKiB: plugin.memoryKiB("RssAnon"),
      peakKiB: plugin.memoryKiB("VmHWM"),
    };
    if (longRun) {
      const started = performance.now();
      const samplesKiB: number[] = [];
      await sendGenerated(plugin, count, longRun.writes, longRun.log, samplesKiB);
      memory.long = {
        samplesKiB,
        writes: longRun.writes,
        afterKiB: plugin.memoryKiB("VmRSS"),
        anonAfterKiB: plugin.memoryKiB("RssAnon"),
        peakKiB: plugin.memoryKiB("VmHWM"),
        seconds: Math.round((performance.now() - started) / 100) / 10,
      };
    }
    return memory;
  } finally {
    await plugin.stop();
  }
}

export const footprint: Section = {
  name: "footprint",
  async run(context: BenchContext): Promise<SectionResult> {
    const spawns = context.quick ? 3 : 10;
    const writes = context.quick ? 1_000 : 5_000;
    const dir = `${context.tmp}/footprint`;
    const cln = clnBackupNode(dir);
    Deno.mkdirSync(`${dir}/null-node`);
    const nul = nullPluginCommand(`${dir}/null-node`);
    context.log(`footprint: ${spawns} spawns of each plugin`);
    await startupMs(cln);
    await startupMs(nul);
    const clnMs: number[] = [];
    const nullMs: number[] = [];
    for (let i = 0; i < spawns; i++) {
      clnMs.push(await startupMs(cln));
      nullMs.push(await startupMs(nul));
    }
    context.log(`footprint: resident memory after ${writes} writes`);
    const million = context.million ? { writes: 1_000_000, log: context.log } : undefined;
    const clnMemory = await memoryAfterWrites(cln, writes, million);
    const nullMemory = await memoryAfterWrites(nul, writes);
    const section = "plugin footprint";
    const mib = (kib: number) => kib * 1024 / MiB;
    const rows: Row[] = [
      row({
        section,
        metric: `spawn to getmanifest answer, median of ${spawns}`,
        value: median(clnMs),
        unit: "ms",
        reference: { label: "null plugin", value: median(nullMs) },
      }),
      row({
        section,
        metric: "resident memory (VmRSS) after start",
        value: mib(clnMemory.startedKiB),
        unit: "MiB",
        reference: { label: "null plugin", value: mib(nullMemory.startedKiB) },
      }),
      row({
        section,
        metric: `resident memory (VmRSS) after ${writes.toLocaleString("en-US")} writes`,
        value: mib(clnMemory.afterKiB),
        unit: "MiB",
        reference: { label: "null plugin", value: mib(nullMemory.afterKiB) },
      }),
    ];
    const long = clnMemory.long;
    if (long) {
      /** A memory figure after the long run, against the same process's after `writes`. */
      const longRow = (
        what: string,
        after: number,
        before: number,
        extra: Pick<Row, "goal" | "note">,
      ) =>
        row({
          section,
          metric: `${what} after ${long.writes.toLocaleString("en-US")} writes`,
          value: mib(after),
          unit: "MiB",
          reference: {
            label: `same process after ${writes.toLocaleString("en-US")}`,
            value: mib(before),
          },
          ...extra,
        });
      rows.push(
        longRow("resident memory (VmRSS)", long.afterKiB, clnMemory.afterKiB, { goal: "<= 1.1x" }),
        longRow("private memory (RssAnon)", long.anonAfterKiB, clnMemory.anonAfterKiB, {
          note: "VmRSS less RssFile (pages of mapped files: the deno binary's code and data, " +
            "clean and shared) and RssShmem: what the process itself holds",
        }),
      );
    }
    return {
      rows,
      details: {
        startup_ms: { cln_backup: clnMs, null_plugin: nullMs },
        memory_kib: { cln_backup: clnMemory, null_plugin: nullMemory },
      },
    };
  },
};
