/**
 * The scale rows: backups of 10,000 and 100,000 changes (and 1,000,000 with `--million`)
 * on the same small base, written by the plugin's writer; for each, the restore's time and
 * peak memory, the compaction's time, and the bytes on disk. Each time is set against the
 * smallest size's, scaled by the number of changes: a ratio near 1 means the cost grows
 * linearly.
 *
 * @module
 */
import { createFileBackup } from "../lib/backends/file/create.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { encodeStatements } from "../lib/format/record.ts";
import { buildSnapshot } from "./restore_data.ts";
import { backupBytes } from "./backup_size.ts";
import { child } from "./restore_speed.ts";
import type { ChildResult } from "./restore_child.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { MiB } from "./stats.ts";
import { Workload } from "./workload.ts";

interface Measured {
  changes: number;
  bytes: number;
  v1Bytes: number;
  restore: ChildResult;
  compact: ChildResult;
}

/** Writes `changes` changes on the activity fixture's database; returns the v1 bytes. */
function buildBackup(dir: string, changes: number): number {
  const snapshot = `${dir}.sqlite3`;
  // A target of 0 bytes: the fixture's database as it is.
  const version = buildSnapshot(snapshot, 0);
  createFileBackup(dir, { version, path: snapshot });
  Deno.removeSync(snapshot);
  const workload = new Workload({ seed: 3, bigEvery: 7, fromVersion: version, firstKey: 3e6 });
  // syncOnClose: one sync per segment; a million fdatasyncs would measure nothing here.
  const writer = FileBackend.open(`file://${dir}`, dir, { syncOnClose: true });
  let v1Bytes = 0;
  try {
    for (let i = 0; i < changes; i++) {
      const tx = workload.next();
      writer.append({ version: tx.version, statements: tx.writes });
      v1Bytes += 9 + encodeStatements(tx.writes).length;
    }
  } finally {
    writer.close();
  }
  return v1Bytes;
}

export const scale: Section = {
  name: "scale",
  async run(context: BenchContext): Promise<SectionResult> {
    const sizes = context.quick
      ? [1_000, 10_000]
      : context.million
      ? [10_000, 100_000, 1_000_000]
      : [10_000, 100_000];
    const measured: Measured[] = [];
    for (const changes of sizes) {
      const dir = `${context.tmp}/scale-${changes}`;
      context.log(`scale: writing ${changes} changes`);
      const v1Bytes = buildBackup(dir, changes);
      const bytes = backupBytes(dir);
      context.log(`scale: restoring ${changes} changes`);
      const target = `${context.tmp}/scale-restored.sqlite3`;
      const restore = await child(["restore", `file://${dir}`, target]);
      Deno.removeSync(target);
      context.log(`scale: compacting ${changes} changes`);
      const compact = await child(["compact", dir]);
      Deno.removeSync(dir, { recursive: true });
      if (restore.changes !== changes) {
        throw new Error(`scale: restored ${restore.changes} of ${changes} changes`);
      }
      measured.push({ changes, bytes, v1Bytes, restore, compact });
    }
    const section = "scale";
    const first = measured[0];
    const n = (count: number) => count.toLocaleString("en-US");
    /** A time in seconds, against the smallest size's scaled by the number of changes. */
    const timeRow = (m: Measured, what: "restore" | "compact", metric: string, note?: string) =>
      row({
        section,
        metric: `${metric}, ${n(m.changes)} changes`,
        value: m[what].ms / 1000,
        unit: "s",
        reference: {
          label: `${n(first.changes)}'s x ${m.changes / first.changes}`,
          value: first[what].ms * (m.changes / first.changes) / 1000,
        },
        note,
      });
    const rows: Row[] = [];
    for (const m of measured) {
      rows.push(
        timeRow(
          m,
          "restore",
          "restore time",
          m === first
            ? "on the activity fixture's database (a few MB), so that the changes dominate; " +
              "reference = the smallest size's figure scaled by the number of changes (1x = " +
              "linear); restore and compaction each in a process of their own"
            : undefined,
        ),
        row({
          section,
          metric: `restore peak RSS (VmHWM), ${n(m.changes)} changes`,
          value: m.restore.vmHwmKiB * 1024 / MiB,
          unit: "MiB",
          reference: { label: `${n(first.changes)} changes`, value: first.restore.vmHwmKiB / 1024 },
          goal: "flat (<= 1.1x)",
        }),
        timeRow(m, "compact", "compaction time"),
        row({
          section,
          metric: `backup bytes, ${n(m.changes)} changes`,
          value: m.bytes / 1e6,
          unit: "MB",
          reference: { label: "raw statements (v1)", value: m.v1Bytes / 1e6 },
        }),
      );
    }
    return {
      rows,
      details: {
        sizes: measured.map((m) => ({
          changes: m.changes,
          backup_bytes: m.bytes,
          v1_bytes: m.v1Bytes,
          restore: m.restore,
          compact: m.compact,
          restore_changes_per_s: Math.round(m.changes / (m.restore.ms / 1000)),
        })),
      },
    };
  },
};
