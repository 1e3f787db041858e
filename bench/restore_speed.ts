/**
 * Row 2, restore: `restoreBackup` of a snapshot of about 100 MB plus 100,000 changes, against
 * SQLite itself executing the same statements in one transaction from memory, each in a
 * process of its own; and the restore's peak memory for two backup sizes, to show it does
 * not grow with the backup. Also the bytes per change of that backup (row 3).
 *
 * @module
 */
import type { ChildResult } from "./restore_child.ts";
import { settleDisk } from "./machine.ts";
import { buildRestoreData } from "./restore_data.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { MiB } from "./stats.ts";
import { copyEncrypted } from "../lib/backends/file/encrypted_copy.ts";
import { DataKey, hex } from "../lib/crypto/data_key.ts";
import { wrapKey } from "../lib/crypto/wrapped_key.ts";
import { newBackupId } from "../lib/format/segment.ts";
import { backupBytes } from "./backup_size.ts";
import { RUNTIME_FLAGS } from "../lib/cli/runtime_flags.ts";

/** An encrypted copy of the backup `dir` at `into`; returns its key, as hex. */
async function encryptedCopy(dir: string, into: string): Promise<string> {
  const key = await DataKey.generate();
  const backupId = newBackupId();
  const wrappedKey = await wrapKey(key, backupId, { passphrase: "bench" }, {
    logN: 10,
    r: 8,
    p: 1,
  });
  Deno.mkdirSync(into);
  copyEncrypted(dir, into, { key, backupId, wrappedKey });
  return hex(key.bytes);
}

const CHILD = new URL("./restore_child.ts", import.meta.url).pathname;

/** Runs restore_child.ts in a process of its own. */
export async function child(args: string[]): Promise<ChildResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUNTIME_FLAGS, "--allow-all", "--no-lock", CHILD, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) throw new Error(`restore_child ${args[0]} failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

function fastest(results: ChildResult[]): ChildResult {
  return results.reduce((best, r) => r.ms < best.ms ? r : best);
}

export const restoreSpeed: Section = {
  name: "restore",
  async run(context: BenchContext): Promise<SectionResult> {
    const [small, large] = context.quick ? [2_000, 10_000] : [20_000, 100_000];
    const snapshotBytes = (context.quick ? 10 : 100) * 1e6;
    const dir = `${context.tmp}/restore`;
    const started = performance.now();
    const data = buildRestoreData(dir, snapshotBytes, [small, large], context.log);
    const generatedS = (performance.now() - started) / 1000;
    context.log(
      `restore: generated backups of ${small} and ${large} changes in ${generatedS.toFixed(1)} s`,
    );
    const target = `${dir}/restored.sqlite3`;
    const url = (count: number) => `file://${data.backups.get(count)}`;
    const encrypted = `${dir}/encrypted-${large}`;
    const keyHex = await encryptedCopy(data.backups.get(large)!, encrypted);
    context.log(`restore: encrypted copy of the ${large}-change backup made`);

    // Floor and restore alternate, and each keeps its fastest round: the machine is shared.
    const rounds = context.quick ? 1 : 2;
    const floors: ChildResult[] = [];
    const fulls: ChildResult[] = [];
    const sealed: ChildResult[] = [];
    // Each measured after the previous one's 100 MB database is written back.
    for (let round = 1; round <= rounds; round++) {
      context.log(`restore: round ${round}/${rounds}: SQLite floor, ${large} changes`);
      await settleDisk();
      floors.push(await child(["floor", data.snapshot, data.statements, target]));
      Deno.removeSync(target);
      context.log(`restore: round ${round}/${rounds}: restoreBackup, ${large} changes`);
      await settleDisk();
      fulls.push(await child(["restore", url(large), target]));
      Deno.removeSync(target);
      context.log(`restore: round ${round}/${rounds}: restoreBackup, encrypted, ${large} changes`);
      await settleDisk();
      sealed.push(await child(["restore", `file://${encrypted}`, target, keyHex]));
      Deno.removeSync(target);
    }
    context.log(`restore: restoreBackup, ${small} changes (peak memory)`);
    const part = await child(["restore", url(small), target]);
    Deno.removeSync(target);
    const floor = fastest(floors);
    const full = fastest(fulls);
    const enc = fastest(sealed);
    if (full.changes !== large || part.changes !== small || floor.changes !== large) {
      throw new Error(`restore counts differ: ${JSON.stringify({ full, part, floor })}`);
    }

    const section = "restore";
    const label = `${(data.snapshotBytes / 1e6).toFixed(0)} MB + ${large.toLocaleString("en-US")}`;
    const verified = floor.ms + floor.integrityCheckMs! + floor.fsyncMs!;
    const rows: Row[] = [
      row({
        section,
        metric: `time, ${label} changes`,
        value: full.ms / 1000,
        unit: "s",
        reference: { label: "SQLite floor", value: floor.ms / 1000 },
        goal: "<= 1.3x",
        note: "SQLite floor = copy the snapshot file, then execute the same statements from " +
          "memory in one transaction (journal off, synchronous off, foreign keys on); each " +
          "in its own process, fastest of the rounds",
      }),
      row({
        section,
        metric: "time, same, floor incl. restore's checks",
        value: full.ms / 1000,
        unit: "s",
        reference: { label: "floor + integrity_check + fsync", value: verified / 1000 },
        note:
          `restore also runs PRAGMA integrity_check (${
            (floor.integrityCheckMs! / 1000).toFixed(2)
          } s ` +
          `on the floor's result) and an fsync of the database (${
            (floor.fsyncMs! / 1000).toFixed(2)
          } s)`,
      }),
      row({
        section,
        metric: `time, same, encrypted backup`,
        value: enc.ms / 1000,
        unit: "s",
        reference: { label: "plain backup", value: full.ms / 1000 },
        goal: "<= 1.15x",
        note: "the same backup copied record by record into an encrypted one (upgrade " +
          "--encrypt's copy): each record opened (XChaCha20-Poly1305) before it is decoded",
      }),
      row({
        section,
        metric: `peak memory (VmHWM), ${large.toLocaleString("en-US")} changes`,
        value: full.vmHwmKiB * 1024 / MiB,
        unit: "MiB",
        reference: {
          label: `${small.toLocaleString("en-US")} changes`,
          value: part.vmHwmKiB * 1024 / MiB,
        },
        goal: "flat (~1x)",
      }),
    ];
    rows.push(row({
      section: "backup size",
      metric: `${large.toLocaleString("en-US")} generated changes`,
      value: data.logBytes.get(large)! / large,
      unit: "B/change",
      reference: { label: "raw statements (v1)", value: data.v1Bytes / large },
      goal: "<= 0.5x",
      note: "v1 = what the Python plugin's .dbak stores per change: a 9-byte header and the " +
        "statements joined by NUL bytes",
    }));
    const plainBytes = backupBytes(data.backups.get(large)!);
    rows.push(row({
      section: "backup size",
      metric: `same, encrypted (base + ${large.toLocaleString("en-US")} changes)`,
      value: backupBytes(encrypted) / 1e6,
      unit: "MB",
      reference: { label: "plain", value: plainBytes / 1e6 },
      note: "each record grows by its 24-byte nonce and 16-byte tag; key.json adds about 0.4 kB",
    }));
    return {
      rows,
      details: {
        snapshot_bytes: data.snapshotBytes,
        snapshot_version: data.snapshotVersion,
        base_bytes: data.baseBytes,
        changes: { small, large },
        log_bytes: Object.fromEntries(data.logBytes),
        v1_change_bytes: data.v1Bytes,
        generation_s: generatedS,
        rounds,
        floor: floors,
        restore_large: fulls,
        restore_large_encrypted: sealed,
        restore_small: part,
      },
    };
  },
};
