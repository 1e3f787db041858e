/**
 * Row 4, the plugin's footprint: time from spawn to the `getmanifest` answer (median of
 * several spawns, after one untimed spawn that fills Deno's module cache), and resident
 * memory once started and after the hook rows' writes, each beside the null plugin's.
 *
 * @module
 */
import { clnBackupNode, hookWorkload, roundTrip, startPlugin } from "./hook_latency.ts";
import { nullPluginCommand, type PluginCommand, PluginProcess } from "./plugin_driver.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { median, MiB } from "./stats.ts";

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
  peakKiB: number;
}

/** Resident memory once started and after `count` writes. */
async function memoryAfterWrites(command: PluginCommand, count: number): Promise<Memory> {
  const work = hookWorkload(count);
  const plugin = await startPlugin(command);
  try {
    const startedKiB = plugin.memoryKiB("VmRSS");
    for (let i = 0; i < count; i++) await roundTrip(plugin, work.ids[i], work.messages[i]);
    return { startedKiB, afterKiB: plugin.memoryKiB("VmRSS"), peakKiB: plugin.memoryKiB("VmHWM") };
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
    const clnMemory = await memoryAfterWrites(cln, writes);
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
    return {
      rows,
      details: {
        startup_ms: { cln_backup: clnMs, null_plugin: nullMs },
        memory_kib: { cln_backup: clnMemory, null_plugin: nullMemory },
      },
    };
  },
};
