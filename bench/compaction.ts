/**
 * Rows of the compaction benchmark: a backup of about 1 GB (a base of about 100 MB and the
 * recorded workload's changes for the rest), compacted by the running plugin with
 * `backup-compact` while the driver keeps sending `db_write`s. The hook's round trip during
 * the compaction is set against the same process's round trip before it; also the
 * compaction's throughput, the extra disk and memory it takes, and the restore time of the
 * same backup before and after.
 *
 * @module
 */
import { createFileBackup } from "../lib/backends/file/create.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { readLayout } from "../lib/format/layout.ts";
import { clnBackupCommand, type PluginProcess } from "./plugin_driver.ts";
import { roundTrip, startPlugin } from "./hook_latency.ts";
import type { ChildResult } from "./restore_child.ts";
import { buildSnapshot } from "./restore_data.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { MiB, summarize } from "./stats.ts";
import { dbWriteMessage, Workload } from "./workload.ts";
import { RUNTIME_FLAGS } from "../lib/cli/runtime_flags.ts";

const CHILD = new URL("./restore_child.ts", import.meta.url).pathname;
const encoder = new TextEncoder();

function newestBaseBytes(dir: string): number {
  const base = readLayout(dir).bases.at(-1);
  return base ? Deno.statSync(base.path).size : 0;
}

/** Bytes the files under `dir` take on disk (allocated blocks: a base being written is sparse). */
function diskBytes(dir: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    total += entry.isDirectory ? diskBytes(path) : (Deno.statSync(path).blocks ?? 0) * 512;
  }
  return total;
}

function directoryBytes(dir: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    total += entry.isDirectory ? directoryBytes(path) : Deno.statSync(path).size;
  }
  return total;
}

/** Restores in a process of its own; also gives the database's size. */
async function restoreMs(
  url: string,
  target: string,
): Promise<ChildResult & { databaseBytes: number }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUNTIME_FLAGS, "--allow-all", "--no-lock", CHILD, "restore", url, target],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  const databaseBytes = Deno.statSync(target).size;
  Deno.removeSync(target);
  return { ...JSON.parse(new TextDecoder().decode(output.stdout)), databaseBytes };
}

/** Builds the backup: snapshot, then workload changes appended until it holds `bytes`. */
function buildBackup(dir: string, snapshotBytes: number, bytes: number): {
  workload: Workload;
  changes: number;
} {
  const snapshot = `${dir}/snapshot.sqlite3`;
  const version = buildSnapshot(snapshot, snapshotBytes);
  createFileBackup(`${dir}/backup`, { version, path: snapshot });
  Deno.removeSync(snapshot);
  const workload = new Workload({ seed: 9, bigEvery: 7, fromVersion: version, firstKey: 2e6 });
  // syncOnClose: one sync per segment; 300,000 fdatasyncs would measure nothing here.
  const writer = FileBackend.open(`file://${dir}/backup`, `${dir}/backup`, {
    syncOnClose: true,
  });
  let changes = 0;
  try {
    while (writer.state().bytes < bytes) {
      const tx = workload.next();
      writer.append({ version: tx.version, statements: tx.writes });
      changes++;
    }
  } finally {
    writer.close();
  }
  return { workload, changes };
}

/** Sends hooks from `workload` until `until()` says stop; returns their round trips. */
async function hooks(
  plugin: PluginProcess,
  workload: Workload,
  until: () => boolean,
  next: { id: number },
  onSample: (ms: number) => void = () => {},
): Promise<number[]> {
  const samples: number[] = [];
  while (!until()) {
    const id = `cln:db_write#${next.id++}`;
    const ms = await roundTrip(plugin, id, encoder.encode(dbWriteMessage(id, workload.next())));
    samples.push(ms);
    onSample(ms);
  }
  return samples;
}

/** A compaction's own files (scratch database, new base) and the MiB they take on disk. */
function compactionFiles(dir: string): Record<string, number> {
  const files: Record<string, number> = {};
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.name.endsWith(".tmp")) continue;
    const path = `${dir}/${entry.name}`;
    const bytes = entry.isDirectory ? diskBytes(path) : (Deno.statSync(path).blocks ?? 0) * 512;
    files[entry.name] = Math.round(bytes / MiB);
  }
  return files;
}

/** The highest nice value among a process's threads (the compaction worker lowers its own). */
function highestNice(pid: number): number {
  let highest = -20;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const fields = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/stat`).split(") ")[1];
      highest = Math.max(highest, Number(fields.split(" ")[16]));
    } catch {
      // The thread ended.
    }
  }
  return highest;
}

/** The step a compaction is at, from the files it leaves in the backup directory. */
function compactionStep(dir: string): string {
  const names = [...Deno.readDirSync(dir)].map((e) => e.name);
  if (names.some((n) => n.startsWith("base-") && n.endsWith(".tmp"))) return "writing the base";
  if (names.some((n) => n.startsWith("compacting-"))) return "rebuilding the database";
  return "deleting, or between steps";
}

/** How often the backup's disk use is sampled during the compaction. */
const SAMPLE_MS = 20;

/** Hooks slower than this are counted by the compaction step they met. */
const SLOW_MS = 20;

function slowSteps(slow: { ms: number; step: string }[]): string {
  const counts = new Map<string, number>();
  for (const { step } of slow) counts.set(step, (counts.get(step) ?? 0) + 1);
  return counts.size === 0 ? "none" : [...counts].map(([step, n]) => `${step} ${n}`).join(", ");
}

export const compaction: Section = {
  name: "compact",
  async run(context: BenchContext): Promise<SectionResult> {
    const snapshotBytes = (context.quick ? 10 : 100) * 1e6;
    const backupBytes = (context.quick ? 60 : 1050) * 1e6;
    const dir = `${context.tmp}/compact`;
    const lightningDir = `${dir}/node`;
    Deno.mkdirSync(lightningDir, { recursive: true });
    context.log(`compact: building a backup of ${backupBytes / 1e6} MB`);
    const { workload, changes } = buildBackup(dir, snapshotBytes, backupBytes);
    const url = `file://${dir}/backup`;
    writeLockFile(lightningDir, { backend_url: url });
    const sizeBefore = directoryBytes(`${dir}/backup`);
    context.log(`compact: ${changes} changes, ${(sizeBefore / 1e6).toFixed(0)} MB; restoring it`);
    const before = await restoreMs(url, `${dir}/restored.sqlite3`);

    // Not by itself: the backup is due at once, and the reference hooks must meet no compaction.
    const plugin = await startPlugin(clnBackupCommand(lightningDir, `${dir}/backup`), {
      "backup-compact-auto": false,
    });
    const next = { id: 1 };
    let idle: number[];
    let during: number[];
    let result: Record<string, unknown>;
    let peakExtraBytes = 0;
    let peakFiles: Record<string, number> = {};
    let workerNice = -20;
    let rssBeforeKiB: number;
    const slow: { ms: number; step: string }[] = [];
    let hwmKiB: number;
    try {
      const idleCount = context.quick ? 1_000 : 5_000;
      context.log(`compact: ${idleCount} hooks with no compaction`);
      idle = await hooks(plugin, workload, () => next.id > idleCount, next);
      rssBeforeKiB = plugin.memoryKiB("VmRSS");
      const start = diskBytes(`${dir}/backup`);
      let done = false;
      context.log("compact: backup-compact, with hooks flowing");
      const call = plugin.request("backup-compact", []).finally(() => done = true);
      let step = "starting";
      const sampler = setInterval(() => {
        try {
          const extra = diskBytes(`${dir}/backup`) - start;
          if (extra > peakExtraBytes) {
            peakExtraBytes = extra;
            peakFiles = compactionFiles(`${dir}/backup`);
          }
          step = compactionStep(`${dir}/backup`);
          workerNice = Math.max(workerNice, highestNice(plugin.pid));
        } catch {
          // A file went between the listing and its stat.
        }
      }, SAMPLE_MS);
      during = await hooks(plugin, workload, () => done, next, (ms) => {
        if (ms > SLOW_MS) slow.push({ ms: Math.round(ms * 10) / 10, step });
      });
      clearInterval(sampler);
      const answer = (await call).message;
      if (!answer.result) throw new Error(`backup-compact failed: ${JSON.stringify(answer)}`);
      result = answer.result as Record<string, unknown>;
      hwmKiB = plugin.memoryKiB("VmHWM");
    } finally {
      await plugin.stop();
    }
    const sizeAfter = directoryBytes(`${dir}/backup`);
    context.log(`compact: restoring the compacted backup`);
    const after = await restoreMs(url, `${dir}/restored.sqlite3`);

    const [a, b] = [summarize(idle), summarize(during)];
    const section = "compaction";
    const folded = Number(result.versions_folded);
    const seconds = Number(result.seconds);
    const rows: Row[] = [
      ...(["p50", "p99", "max"] as const).map((q) =>
        row({
          section,
          metric: `hook round trip during compaction, ${q}`,
          value: b[q],
          unit: "ms",
          reference: { label: "same plugin, no compaction", value: a[q] },
          goal: q === "p99" ? "<= 1.5x" : q === "max" ? "<= 10 ms" : undefined,
          note: q === "p50"
            ? `${during.length} hooks answered during the compaction, ${idle.length} before it`
            : q === "max"
            ? `hooks over ${SLOW_MS} ms: ${idle.filter((ms) => ms > SLOW_MS).length} of ` +
              `${idle.length} with no compaction; ${slow.length} of ${during.length} during ` +
              `it, by the step they met: ${slowSteps(slow)}`
            : undefined,
        })
      ),
      row({
        section,
        metric: `throughput, ${(sizeBefore / 1e9).toFixed(2)} GB backup`,
        value: folded / seconds,
        unit: "changes/s",
        reference: { label: "Python plugin (issue 10)", value: 840, unit: "changes/s" },
        note: `${folded} changes folded in ${seconds} s`,
      }),
      row({
        section,
        metric: "peak extra disk",
        value: peakExtraBytes / MiB,
        unit: "MiB",
        reference: { label: "the new base", value: newestBaseBytes(`${dir}/backup`) / MiB },
        goal: "<= 1 database",
        note: `blocks allocated beyond the backup's, sampled every ${SAMPLE_MS} ms (the ` +
          `appends meanwhile included); at the peak, in MiB: ${
            Object.entries(peakFiles).map(([name, mib]) => `${name} ${mib}`).join(", ")
          } (compacting-*: the database being rebuilt; base-*.tmp: the base it becomes)`,
      }),
      row({
        section,
        metric: "plugin peak RSS (VmHWM)",
        value: hwmKiB / 1024,
        unit: "MiB",
        reference: { label: "RSS before compaction", value: rssBeforeKiB / 1024 },
      }),
      row({
        section,
        metric: "restore time after compaction",
        value: after.ms / 1000,
        unit: "s",
        reference: { label: "before", value: before.ms / 1000 },
      }),
      row({
        section,
        metric: "backup size after compaction",
        value: sizeAfter / MiB,
        unit: "MiB",
        reference: { label: "before", value: sizeBefore / MiB },
      }),
    ];
    return {
      rows,
      details: {
        changes,
        result,
        idle_ms: a,
        during_ms: b,
        restore_before: before,
        after,
        peak_extra_files_mib: peakFiles,
        worker_nice: workerNice,
        slow_hooks_during: slow.sort((x, y) => y.ms - x.ms).slice(0, 20),
      },
    };
  },
};
