/**
 * Row 1, the `db_write` hook round trip: the same transactions sent to (a) the null plugin
 * (the protocol floor), (b) cln-backup on a file backup, (c) appended as the same
 * record bytes with one write and fdatasync in this process (the disk floor), (d)
 * cln-backup on an encrypted file backup, and (f) the records written as (c) but into zeros
 * synced ahead of them, as cln-backup writes its live log, interleaved message by message so
 * that all see the same machine noise; and (e) the hook path's parts, each timed alone in
 * this process (hook_profile.ts).
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
import { HOOK_PARTS, HookProfiler } from "./hook_profile.ts";
import { dbWriteMessage, statementBytes, Workload } from "./workload.ts";
import { makeEncryptedBackup } from "../tests/support/encrypted.ts";
import { writeKeyFile } from "../lib/crypto/key_file.ts";

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

/** {@linkcode clnBackupNode} with an encrypted backup and the plugin's key file. */
async function encryptedClnBackupNode(dir: string): Promise<PluginCommand> {
  const lightningDir = `${dir}/node`;
  const backup = `${dir}/backup`;
  Deno.mkdirSync(lightningDir, { recursive: true });
  writeKeyFile(lightningDir, await makeEncryptedBackup(backup));
  writeLockFile(lightningDir, { backend_url: `file://${backup}` });
  return clnBackupCommand(lightningDir, backup);
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

function summaryRows(a: Summary, b: Summary, c: Summary, d: Summary, f: Summary): Row[] {
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
      goal: q === "p50" ? "<= 1.2x" : "<= 1.5x",
      note: q === "p50"
        ? "overhead = cln-backup's quantile minus the null plugin's; disk floor = the same " +
          "record bytes appended with one write + fdatasync in the driver process"
        : undefined,
    }));
  }
  for (const q of ["p50", "p99"] as const) {
    rows.push(row({
      section,
      metric: `overhead over null plugin, ${q}, against writes into zeros`,
      value: b[q] - a[q],
      unit: "ms",
      reference: { label: "zeroed-ahead floor", value: f[q] },
      note: q === "p50"
        ? "zeroed-ahead floor = the same records written with one write + fdatasync each " +
          "into zeros written and synced ahead of them, as cln-backup's live log is " +
          "(docs/FORMAT.md, append): the floor of cln-backup's own way of writing"
        : undefined,
    }));
  }
  for (const q of ["p50", "p99"] as const) {
    rows.push(row({
      section,
      metric: `encrypted backup, ${q}`,
      value: d[q],
      unit: "ms",
      reference: { label: "plain backup", value: b[q] },
      goal: q === "p50" ? "<= +0.05 ms" : undefined,
      note: q === "p50"
        ? "the same writes to cln-backup on an encrypted file backup (zstd, then " +
          "XChaCha20-Poly1305 with a random nonce per record), interleaved with the plain one"
        : undefined,
    }));
  }
  return rows;
}

/** The back-to-back rows: cln-backup's overhead over the null plugin against the floor. */
function backToBackRows(
  burst: number,
  ms: { null_plugin: Summary; cln_backup: Summary; zeroed_ahead_floor: Summary },
): Row[] {
  return (["p50", "p99"] as const).map((q) =>
    row({
      section: "hook round trip",
      metric: `back to back: overhead over null plugin, ${q}`,
      value: ms.cln_backup[q] - ms.null_plugin[q],
      unit: "ms",
      reference: { label: "zeroed-ahead floor", value: ms.zeroed_ahead_floor[q] },
      note: q === "p50"
        ? `${burst} more db_writes, each sent as soon as the last was answered (a burst, as ` +
          "when lightningd commits transactions in a row: no idle time between hooks), to the " +
          "null plugin, then to cln-backup, then written as the zeroed-ahead floor"
        : undefined,
    })
  );
}

/** One record written and synced as a floor writes it (one write, one fdatasync): its ms. */
function timedWrite(file: Deno.FsFile, record: Uint8Array): number {
  const start = performance.now();
  writeAll(file, record);
  file.syncDataSync();
  return performance.now() - start;
}

/** `work`'s transactions from `start` to `end`. */
function sliceWorkload(work: HookWorkload, start: number, end: number): HookWorkload {
  return {
    ids: work.ids.slice(start, end),
    messages: work.messages.slice(start, end),
    records: work.records.slice(start, end),
    statementBytes: work.statementBytes.slice(start, end),
  };
}

/** One row per part of the hook path: its median, as a share of cln-backup's p50 round trip. */
function profileRows(profiler: HookProfiler, roundTrip: number): Row[] {
  const section = "hook path profile";
  const reference = { label: "cln-backup round trip p50", value: roundTrip };
  const rows = HOOK_PARTS.map((part) =>
    row({
      section,
      metric: part,
      value: median(profiler.samples.get(part)!),
      unit: "ms",
      reference,
    })
  );
  const parts = rows.reduce((sum, r) => sum + r.value, 0);
  rows.push(row({
    section,
    metric: "pipes, event loop and the rest",
    value: roundTrip - parts,
    unit: "ms",
    reference,
    note: "each part timed alone in the bench's process with the plugin's functions on the " +
      "same messages (median); ratio = its share of cln-backup's p50 round trip; the rest = " +
      "that round trip less the parts' sum",
  }));
  return rows;
}

/** The interleaved steps: null plugin, cln-backup, disk floor, encrypted, profile. */
const STEPS = ["a", "b", "c", "d", "e", "f"] as const;

/** A file of `bytes` zeros, written and synced, to write into from its start. */
function zeroedFile(path: string, bytes: number): Deno.FsFile {
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  const zeros = new Uint8Array(1 << 20);
  for (let at = 0; at < bytes; at += zeros.length) writeAll(file, zeros);
  file.syncSync();
  file.seekSync(0, Deno.SeekMode.Start);
  return file;
}
type Step = typeof STEPS[number];

export const hookLatency: Section = {
  name: "hook",
  async run(context: BenchContext): Promise<SectionResult> {
    const count = context.quick ? 1_000 : 5_000;
    const burst = context.quick ? 300 : 1_500;
    const dir = `${context.tmp}/hook`;
    context.log(`hook: generating ${count + burst} db_writes`);
    const all = hookWorkload(count + burst);
    const work = sliceWorkload(all, 0, count);
    const cln = await startPlugin(clnBackupNode(dir));
    const enc = await startPlugin(await encryptedClnBackupNode(`${dir}/encrypted`));
    Deno.mkdirSync(`${dir}/null-node`);
    const nul = await startPlugin(nullPluginCommand(`${dir}/null-node`));
    const floorFile = Deno.openSync(`${dir}/disk-floor.log`, {
      write: true,
      create: true,
      append: true,
    });
    const recordBytes = all.records.reduce((sum, r) => sum + r.length, 0);
    const zeroedFloorFile = zeroedFile(`${dir}/zeroed-floor.log`, recordBytes);
    // The plugin's path appends into zeros written ahead: so does its profile.
    const profiler = new HookProfiler(zeroedFile(`${dir}/profile.log`, recordBytes));
    const a: number[] = [];
    const b: number[] = [];
    const c: number[] = [];
    const d: number[] = [];
    const f: number[] = [];
    const backToBack = { nul: [] as number[], cln: [] as number[], floor: [] as number[] };
    const steps: Record<Step, (i: number) => Promise<void>> = {
      a: async (i) => void a.push(await roundTrip(nul, work.ids[i], work.messages[i])),
      b: async (i) => void b.push(await roundTrip(cln, work.ids[i], work.messages[i])),
      c: (i) => Promise.resolve(void c.push(timedWrite(floorFile, work.records[i]))),
      d: async (i) => void d.push(await roundTrip(enc, work.ids[i], work.messages[i])),
      e: (i) => Promise.resolve(profiler.run(work.messages[i])),
      f: (i) => Promise.resolve(void f.push(timedWrite(zeroedFloorFile, work.records[i]))),
    };
    // The order rotates so that none of the five always follows the same one.
    const orders = STEPS.map((_, k) => [...STEPS.slice(k), ...STEPS.slice(0, k)]);
    context.log(`hook: ${count} round trips each, interleaved`);
    try {
      for (let i = 0; i < count; i++) {
        for (const step of orders[i % orders.length]) await steps[step](i);
      }
      // A burst, as when lightningd commits transactions in a row: each db_write sent as soon
      // as the last is answered, one plugin (or the floor) at a time.
      context.log(`hook: ${burst} round trips back to back, each plugin alone`);
      const tail = sliceWorkload(all, count, count + burst);
      for (let i = 0; i < burst; i++) {
        backToBack.nul.push(await roundTrip(nul, tail.ids[i], tail.messages[i]));
      }
      for (let i = 0; i < burst; i++) {
        backToBack.cln.push(await roundTrip(cln, tail.ids[i], tail.messages[i]));
      }
      for (let i = 0; i < burst; i++) {
        backToBack.floor.push(timedWrite(zeroedFloorFile, tail.records[i]));
      }
    } finally {
      floorFile.close();
      zeroedFloorFile.close();
      profiler.log.close();
      profiler.close();
      await cln.stop();
      await enc.stop();
      await nul.stop();
    }
    const [sa, sb, sc, sd, sf] = [a, b, c, d, f].map(summarize);
    const burstMs = {
      null_plugin: summarize(backToBack.nul),
      cln_backup: summarize(backToBack.cln),
      zeroed_ahead_floor: summarize(backToBack.floor),
    };
    const paired = b.map((v, i) => v - a[i]);
    return {
      rows: [
        ...summaryRows(sa, sb, sc, sd, sf),
        ...backToBackRows(burst, burstMs),
        ...profileRows(profiler, sb.p50),
      ],
      details: {
        writes: count,
        statement_bytes_p50: median(work.statementBytes),
        statement_bytes_mean: work.statementBytes.reduce((x, y) => x + y, 0) / count,
        record_bytes_mean: work.records.reduce((x, r) => x + r.length, 0) / count,
        null_plugin_ms: sa,
        cln_backup_ms: sb,
        disk_floor_ms: sc,
        zeroed_ahead_floor_ms: sf,
        paired_overhead_ms_p50: median(paired),
        encrypted_ms: sd,
        paired_encrypted_minus_plain_ms_p50: median(d.map((v, i) => v - b[i])),
        back_to_back: { writes: burst, ...burstMs },
        profile_ms: Object.fromEntries(
          HOOK_PARTS.map((part) => [part, summarize(profiler.samples.get(part)!)]),
        ),
      },
    };
  },
};
