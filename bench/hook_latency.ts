/**
 * Row 1, the `db_write` hook round trip: the same transactions sent to (a) the null plugin
 * (the protocol floor), (b) cln-backup on a file backup, and (c) appended as the same
 * record bytes with one write and fdatasync in this process (the disk floor), interleaved
 * message by message so that the three see the same machine noise.
 *
 * @module
 */
import { createFileBackup } from "../lib/backends/file/create.ts";
import { writeAll } from "../lib/fs/durable.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../lib/format/record.ts";
import {
  clnBackupCommand,
  nullPluginCommand,
  type PluginCommand,
  PluginProcess,
} from "./plugin_driver.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { median, summarize, type Summary } from "./stats.ts";
import { dbWriteMessage, statementBytes, Workload } from "./workload.ts";

/** The transactions of the hook rows, framed, with the record cln-backup will store for each. */
export interface HookWorkload {
  ids: string[];
  messages: Uint8Array[];
  records: Uint8Array[];
  statementBytes: number[];
}

const generated = new Map<number, HookWorkload>();

/** `count` transactions from version 1 on, as for a fresh, empty backup (made once a run). */
export function hookWorkload(count: number): HookWorkload {
  const cached = generated.get(count);
  if (cached) return cached;
  const workload = new Workload({ seed: 5, bigEvery: 7, fromVersion: 0, firstKey: 1_000 });
  const encoder = new TextEncoder();
  const out: HookWorkload = { ids: [], messages: [], records: [], statementBytes: [] };
  for (let i = 0; i < count; i++) {
    const tx = workload.next();
    const id = `cln:db_write#${i + 1}`;
    out.ids.push(id);
    out.messages.push(encoder.encode(dbWriteMessage(id, tx)));
    out.records.push(encodeRecord(RecordKind.Change, tx.version, encodeStatements(tx.writes)));
    out.statementBytes.push(statementBytes(tx.writes));
  }
  generated.set(count, out);
  return out;
}

/** A lightning dir holding backup.lock and an empty file backup; returns the plugin command. */
export function clnBackupNode(dir: string): PluginCommand {
  const lightningDir = `${dir}/node`;
  const backup = `${dir}/backup`;
  Deno.mkdirSync(lightningDir, { recursive: true });
  createFileBackup(backup);
  writeLockFile(lightningDir, { backend_url: `file://${backup}` });
  return clnBackupCommand(lightningDir, backup);
}

/** Starts a plugin and takes it through `getmanifest` and `init` (with its plugin options). */
export async function startPlugin(
  command: PluginCommand,
  options: Record<string, unknown> = {},
): Promise<PluginProcess> {
  const plugin = PluginProcess.spawn(command);
  await plugin.getmanifest();
  await plugin.init(command.lightningDir, options);
  return plugin;
}

/** Sends one `db_write` and returns its round trip in ms; throws unless it is `continue`. */
export async function roundTrip(
  plugin: PluginProcess,
  id: string,
  message: Uint8Array,
): Promise<number> {
  const { answer, sentAt } = await plugin.send(id, message);
  const result = (answer.message.result as Record<string, unknown> | undefined)?.result;
  if (result !== "continue") {
    throw new Error(`db_write ${id} was answered ${JSON.stringify(answer.message)}`);
  }
  return answer.at - sentAt;
}

function summaryRows(a: Summary, b: Summary, c: Summary): Row[] {
  const section = "hook round trip";
  const rows: Row[] = [];
  for (const q of ["p50", "p99", "max"] as const) {
    rows.push(row({
      section,
      metric: q,
      value: b[q],
      unit: "ms",
      reference: { label: "null plugin", value: a[q] },
      goal: q === "p99" ? "< 2 ms" : undefined,
    }));
  }
  for (const q of ["p50", "p99"] as const) {
    rows.push(row({
      section,
      metric: `overhead over null plugin, ${q}`,
      value: b[q] - a[q],
      unit: "ms",
      reference: { label: "disk floor", value: c[q] },
      goal: q === "p50" ? "<= 1.5x" : undefined,
      note: q === "p50"
        ? "overhead = cln-backup's quantile minus the null plugin's; disk floor = the same " +
          "record bytes appended with one write + fdatasync in the driver process"
        : undefined,
    }));
  }
  return rows;
}

export const hookLatency: Section = {
  name: "hook",
  async run(context: BenchContext): Promise<SectionResult> {
    const count = context.quick ? 1_000 : 5_000;
    const dir = `${context.tmp}/hook`;
    context.log(`hook: generating ${count} db_writes`);
    const work = hookWorkload(count);
    const cln = await startPlugin(clnBackupNode(dir));
    Deno.mkdirSync(`${dir}/null-node`);
    const nul = await startPlugin(nullPluginCommand(`${dir}/null-node`));
    const floorFile = Deno.openSync(`${dir}/disk-floor.log`, {
      write: true,
      create: true,
      append: true,
    });
    const a: number[] = [];
    const b: number[] = [];
    const c: number[] = [];
    const steps: Record<"a" | "b" | "c", (i: number) => Promise<void>> = {
      a: async (i) => void a.push(await roundTrip(nul, work.ids[i], work.messages[i])),
      b: async (i) => void b.push(await roundTrip(cln, work.ids[i], work.messages[i])),
      c: (i) => {
        const start = performance.now();
        writeAll(floorFile, work.records[i]);
        floorFile.syncDataSync();
        c.push(performance.now() - start);
        return Promise.resolve();
      },
    };
    // The order rotates so that none of the three always follows the same one.
    const orders = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]] as const;
    context.log(`hook: ${count} round trips each, interleaved`);
    try {
      for (let i = 0; i < count; i++) {
        for (const step of orders[i % 3]) await steps[step](i);
      }
    } finally {
      floorFile.close();
      await cln.stop();
      await nul.stop();
    }
    const [sa, sb, sc] = [summarize(a), summarize(b), summarize(c)];
    const paired = b.map((v, i) => v - a[i]);
    return {
      rows: summaryRows(sa, sb, sc),
      details: {
        writes: count,
        statement_bytes_p50: median(work.statementBytes),
        statement_bytes_mean: work.statementBytes.reduce((x, y) => x + y, 0) / count,
        record_bytes_mean: work.records.reduce((x, r) => x + r.length, 0) / count,
        null_plugin_ms: sa,
        cln_backup_ms: sb,
        disk_floor_ms: sc,
        paired_overhead_ms_p50: median(paired),
      },
    };
  },
};
