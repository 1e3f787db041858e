/**
 * S3 rows, against a local Ceph RGW (scripts/rgw.sh; skipped where it is not installed): the
 * `db_write` round trip to S3 alone, to an encrypted S3 backup, to a file, to a file and S3 at
 * once (mirror_urls), and to a file with an asynchronous S3 copy (async_urls), interleaved message by message in one run; a restore from S3 against one from a file of
 * the same backup; and what the operator pays: PUT requests per change (counted at a
 * forwarding proxy) and objects left after packing.
 *
 * @module
 */
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { S3Backend } from "../lib/backends/s3/backend.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { CLN_BACKUP_PLUGIN, type PluginCommand } from "./plugin_driver.ts";
import { hookWorkload, roundTrip, startPlugin } from "./hook_latency.ts";
import { type BenchContext, type Row, row, type Section, type SectionResult } from "./section.ts";
import { median, summarize } from "./stats.ts";
import { buildRestoreData } from "./restore_data.ts";
import { Rgw, rgwMissing, writeCredentials } from "../tests/support/rgw.ts";
import { SlowdownProxy } from "../tests/support/slowdown_proxy.ts";
import { makeEncryptedS3Backup } from "../tests/support/encrypted_s3.ts";
import type { DataKey } from "../lib/crypto/data_key.ts";
import { writeKeyFile } from "../lib/crypto/key_file.ts";
import { RUNTIME_FLAGS } from "../lib/cli/runtime_flags.ts";

/**
 * A lightning dir whose backup.lock names `lock` (with an encrypted backup's `key` beside it);
 * the plugin with all permissions.
 */
function node(
  dir: string,
  lock: { backend_url: string; mirror_urls?: string[]; async_urls?: string[] },
  rgw: Rgw,
  key?: DataKey,
) {
  Deno.mkdirSync(dir, { recursive: true });
  writeLockFile(dir, lock);
  writeCredentials(dir, rgw.credentials);
  if (key) writeKeyFile(dir, key);
  return {
    args: ["run", ...RUNTIME_FLAGS, "-A", CLN_BACKUP_PLUGIN],
    lightningDir: dir,
  } satisfies PluginCommand;
}

async function time(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function hookRows(context: BenchContext, rgw: Rgw, dir: string): Promise<Row[]> {
  const count = context.quick ? 300 : 2_000;
  const work = hookWorkload(count);
  const s3Url = rgw.url(await rgw.bucket());
  const sealedS3 = rgw.url(await rgw.bucket());
  const bothS3 = rgw.url(await rgw.bucket());
  const asyncS3 = rgw.url(await rgw.bucket());
  await createS3Backup(s3Url, rgw.credentials);
  const key = await makeEncryptedS3Backup(rgw, sealedS3);
  await createS3Backup(bothS3, rgw.credentials);
  await createS3Backup(asyncS3, rgw.credentials);
  createFileBackup(`${dir}/file-backup`);
  createFileBackup(`${dir}/both-backup`);
  createFileBackup(`${dir}/async-backup`);
  const plugins = {
    file: await startPlugin(node(`${dir}/file`, { backend_url: `file://${dir}/file-backup` }, rgw)),
    s3: await startPlugin(node(`${dir}/s3`, { backend_url: s3Url }, rgw)),
    sealed: await startPlugin(node(`${dir}/sealed`, { backend_url: sealedS3 }, rgw, key)),
    both: await startPlugin(node(`${dir}/both`, {
      backend_url: `file://${dir}/both-backup`,
      mirror_urls: [bothS3],
    }, rgw)),
    async: await startPlugin(node(`${dir}/async`, {
      backend_url: `file://${dir}/async-backup`,
      async_urls: [asyncS3],
    }, rgw)),
  };
  const samples = {
    file: [] as number[],
    s3: [] as number[],
    sealed: [] as number[],
    both: [] as number[],
    async: [] as number[],
  };
  context.log(
    `s3: ${count} round trips each (file, s3, encrypted s3, file+s3, file+async s3), interleaved`,
  );
  try {
    for (let i = 0; i < count; i++) {
      const names = ["file", "s3", "sealed", "both", "async"];
      const order = i % 2 === 0 ? names : names.toReversed();
      for (const name of order as (keyof typeof plugins)[]) {
        samples[name].push(await roundTrip(plugins[name], work.ids[i], work.messages[i]));
      }
    }
  } finally {
    for (const plugin of Object.values(plugins)) await plugin.stop();
  }
  const [file, s3, sealed, both, async] = [
    summarize(samples.file),
    summarize(samples.s3),
    summarize(samples.sealed),
    summarize(samples.both),
    summarize(samples.async),
  ];
  const section = "s3: hook round trip";
  const rows: Row[] = [];
  for (const q of ["p50", "p99"] as const) {
    rows.push(row({
      section,
      metric: `S3 (local RGW), ${q}`,
      value: s3[q],
      unit: "ms",
      reference: { label: "file backend", value: file[q] },
      note: q === "p50" ? "one PUT with If-None-Match per change, over loopback" : undefined,
    }));
    rows.push(row({
      section,
      metric: `encrypted S3, ${q}`,
      value: sealed[q],
      unit: "ms",
      reference: { label: "S3 alone", value: s3[q] },
      note: q === "p50" ? "each change sealed for its object name (XChaCha20-Poly1305)" : undefined,
    }));
    rows.push(row({
      section,
      metric: `file + S3 in parallel, ${q}`,
      value: both[q],
      unit: "ms",
      reference: { label: "S3 alone", value: s3[q] },
      goal: q === "p50" ? "<= 1.1x" : undefined,
    }));
    rows.push(row({
      section,
      metric: `file + async S3, ${q}`,
      value: async[q],
      unit: "ms",
      reference: { label: "file backend", value: file[q] },
      note: q === "p50" ? "the S3 copy follows in the background, off the hook's path" : undefined,
    }));
  }
  return rows;
}

async function restoreRow(context: BenchContext, rgw: Rgw, dir: string): Promise<Row> {
  const changes = context.quick ? 1_000 : 5_000;
  const data = buildRestoreData(
    `${dir}/restore`,
    (context.quick ? 10 : 50) * 1e6,
    [changes],
    context.log,
  );
  const backup = data.backups.get(changes)!;
  // The same backup in S3: the snapshot uploaded as init does, then each change as the plugin
  // stores it.
  const url = rgw.url(await rgw.bucket());
  await createS3Backup(url, rgw.credentials, {
    version: data.snapshotVersion,
    path: data.snapshot,
  });
  const writer = await S3Backend.connect(url, { credentials: rgw.credentials });
  context.log(`s3: storing ${changes} changes for the restore`);
  for (const entry of new FileBackupReader("file://", backup).entries()) {
    if (entry.kind === "change") await writer.append(entry);
  }
  await writer.settle();
  writer.close();
  const rounds = context.quick ? 2 : 3;
  const fromS3: number[] = [];
  const local: number[] = [];
  const target = `${dir}/restored.sqlite3`;
  for (let round = 0; round < rounds; round++) {
    fromS3.push(
      await time(async () => {
        const reader = await S3BackupReader.fetch(url, rgw.credentials);
        try {
          restoreBackup(reader, target);
        } finally {
          reader.close();
        }
      }),
    );
    Deno.removeSync(target);
    local.push(
      await time(() =>
        Promise.resolve(void restoreBackup(new FileBackupReader("file://", backup), target))
      ),
    );
    Deno.removeSync(target);
  }
  return row({
    section: "s3: restore",
    metric: `snapshot + ${changes} changes from S3 (local RGW)`,
    value: median(fromS3),
    unit: "ms",
    reference: { label: "file restore", value: median(local) },
    note: "median of rounds; fetched into a temporary directory, then restored from it",
  });
}

async function costRows(context: BenchContext, rgw: Rgw): Promise<Row[]> {
  // The issue asks what 100,000 changes leave: measured, not extrapolated.
  const changes = context.quick ? 2_500 : 100_000;
  const work = hookWorkload(Math.min(changes, 2_000));
  const proxy = new SlowdownProxy(rgw.port, () => false);
  try {
    const bucket = await rgw.bucket();
    await createS3Backup(rgw.url(bucket), rgw.credentials);
    const writer = await S3Backend.connect(rgw.url(bucket, "node", proxy.port), {
      credentials: rgw.credentials,
    });
    const before = proxy.requests.filter((r) => r.line.startsWith("PUT")).length;
    context.log(`s3: ${changes} changes, packed every 1000`);
    const statements = [new TextDecoder().decode(work.records[0].subarray(32))];
    for (let v = 1; v <= changes; v++) {
      await writer.append({ version: v, statements });
      await writer.settle();
    }
    writer.close();
    const puts = proxy.requests.filter((r) => r.line.startsWith("PUT")).length - before;
    const objects = (await listBackup(rgw.client(rgw.url(bucket)))).length;
    return [
      row({
        section: "s3: what the operator pays",
        metric: "PUT requests per change",
        value: puts / changes,
        unit: "PUTs",
        note: `${puts} PUTs for ${changes} changes: one each, plus one per pack of 1000`,
      }),
      row({
        section: "s3: what the operator pays",
        metric: `objects after packing ${changes} changes`,
        value: objects,
        unit: "objects",
        note: "packs of 1000, plus the change objects not yet packed (at most 1001)",
      }),
    ];
  } finally {
    await proxy.close();
  }
}

export const s3: Section = {
  name: "s3",
  async run(context: BenchContext): Promise<SectionResult> {
    if (rgwMissing) {
      context.log(rgwMissing);
      return { rows: [] };
    }
    const dir = `${context.tmp}/s3`;
    Deno.mkdirSync(dir, { recursive: true });
    const rgw = await Rgw.start();
    try {
      const rows = await hookRows(context, rgw, dir);
      rows.push(await restoreRow(context, rgw, dir));
      rows.push(...await costRows(context, rgw));
      return { rows };
    } finally {
      await rgw.stop();
    }
  },
};
