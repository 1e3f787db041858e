/**
 * Crash safety with an S3 destination, against a real S3 server (Ceph RGW, one for the whole
 * file): the first 120 writes of the recorded activity run go through `s3://` while the
 * plugin, the gateway or both are killed with SIGKILL at random moments (mid-PUT, mid-pack,
 * between). lightningd
 * restarts as it would (it rolls back what it did not commit, starts a new plugin and resumes
 * at the first `db_write` its database lacks); a killed gateway comes back on the same port
 * after a random pause, while the plugin retries. The plugin packs every 20 changes, so packs
 * are cut short too, and lightningd asks for `backup-compact` once or twice at random moments,
 * so compactions on the plugin's worker are cut short by the kills as well. Every trial must end with the node at the last write sent, the backup
 * holding every committed transaction exactly once (and at most the one change after them
 * that the node did not commit), and a restore equal to the node's database.
 *
 * Each trial starts from a copy of one template (fresh-start and restart replayed once), on
 * a prefix of its own: a plain backup for odd seeds, an encrypted one for even seeds (its
 * objects copied keep their names, which is what their records are bound to). `S3_CRASH_TRIALS` (default 100) and `S3_CRASH_CONCURRENCY` (default
 * 3) tune the run; `S3_CRASH_SEEDS=4,17` replays chosen trials.
 *
 * @module
 */
import { assert, assertEquals } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { killPlan } from "./support/kill_plan.ts";
import { prng } from "./support/prng.ts";
import {
  killNow,
  loadRuns,
  type RecordedWrite,
  replayProcess,
  resumedStream,
  type Runs,
  storedTransactions,
} from "./support/crash_point.ts";
import { type Rgw, writeCredentials } from "./support/rgw.ts";
import { rgwTest, withOwnRgw } from "./support/shared_rgw.ts";
import { type KillReport, runKillTrials } from "./support/seeded_trials.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { retrying } from "../lib/backends/s3/retry.ts";
import { DatabaseSync } from "node:sqlite";
import { DataKey } from "../lib/crypto/data_key.ts";
import { writeKeyFile } from "../lib/crypto/key_file.ts";
import { makeEncryptedS3Backup } from "./support/encrypted_s3.ts";

/** Enough patience to outlast gateway restarts on a loaded machine; every wait bounded. */
const PATIENCE = { s3_timeout_s: 5, s3_retries: 8, s3_retry_delay_s: 0.1 };

/** The plugin packs often, and takes its keys from the file beside backup.lock. */
const PLUGIN_ENV = { AWS_ACCESS_KEY_ID: "", CLN_BACKUP_TEST_S3_PACK_EVERY: "20" };

const VICTIMS = ["plugin", "gateway", "both"] as const;
type Victim = typeof VICTIMS[number];

type TrialReport = KillReport<Victim>;

function copyDir(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isFile) Deno.copyFileSync(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** The trials share the gateway: one restart at a time, each after the one before it. */
let restarting: Promise<void> = Promise.resolve();

function killGateway(rgw: Rgw, pauseMs: number): void {
  restarting = restarting.then(async () => {
    await rgw.killGateway();
    await new Promise((r) => setTimeout(r, pauseMs));
    await rgw.startGateway();
  });
}

/** Copies the template's objects to `to` (a prefix of the same bucket). */
async function copyObjects(rgw: Rgw, bucket: string, from: string, to: string): Promise<void> {
  const client = rgw.client(rgw.url(bucket, from));
  // Another trial may have the gateway killed meanwhile.
  const patient = { timeoutMs: 5_000, retries: 300, retryDelayMs: 100, backoff: 1 };
  const keys: string[] = [];
  await retrying("listing the template", patient, () => {}, async () => {
    keys.length = 0;
    for await (const page of client.list(`${from}/`)) keys.push(...page.map((o) => o.key));
  });
  await Promise.all(keys.map((key) =>
    retrying(`copying ${key}`, patient, () => {}, async () => {
      await client.put(`${to}/${key.slice(from.length + 1)}`, await client.get(key));
    })
  ));
}

/** What a trial starts from: a node's dir and the objects of its backup under `prefix`. */
interface Template {
  dir: string;
  prefix: string;
  /** An encrypted backup's key (the node's dir holds it in backup.key). */
  key?: DataKey;
}

async function buildTemplate(
  rgw: Rgw,
  bucket: string,
  template: Template,
  all: Runs,
): Promise<void> {
  const { dir, prefix } = template;
  const url = rgw.url(bucket, prefix);
  if (template.key) {
    await makeEncryptedS3Backup(rgw, url, { key: template.key });
    writeKeyFile(dir, template.key);
  } else {
    await createS3Backup(url, rgw.credentials);
  }
  writeLockFile(dir, { backend_url: url });
  writeCredentials(dir, rgw.credentials);
  for (const run of all.runs.slice(0, 2)) {
    const node = FakeLightningd.spawn({ lightningDir: dir, env: PLUGIN_ENV });
    assertEquals(await node.replay(run.raw), "committed", node.aborted);
    assertEquals((await node.close()).code, 0);
  }
  assertEquals(dumpDatabase(`${dir}/lightningd.sqlite3`), dumpDatabase(all.runs[1].database));
}

function dataVersionOf(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const row = db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get();
    return Number(row?.intval);
  } finally {
    db.close();
  }
}

/** One or two moments, up to 1.5 s into a trial, at which lightningd asks for a compaction. */
function compactPlan(seed: number): number[] {
  const random = prng(seed * 7919 + 1);
  const count = 1 + Math.floor(random() * 2);
  return Array.from({ length: count }, () => 50 + Math.floor(random() * 1500));
}

/** Writes of the activity run each trial sends: enough for kills, packs and restarts. */
const WRITES_PER_TRIAL = 120;

async function runTrial(
  rgw: Rgw,
  bucket: string,
  seed: number,
  all: Runs,
  template: Template,
): Promise<TrialReport> {
  const activity = all.runs[2].writes;
  const last = activity[Math.min(WRITES_PER_TRIAL, activity.length) - 1];
  const started = performance.now();
  const root = Deno.makeTempDirSync({ prefix: "s3-crash-" });
  const prefix = `trial-${seed}`;
  const url = rgw.url(bucket, prefix);
  await copyObjects(rgw, bucket, template.prefix, prefix);
  const dir = `${root}/node`;
  copyDir(template.dir, dir);
  writeLockFile(dir, { backend_url: url, ...PATIENCE });
  const report: TrialReport = {
    seed,
    kills: { plugin: 0, gateway: 0, both: 0 },
    processes: 0,
    line: "",
  };
  const notes: string[] = [];
  let node: FakeLightningd | undefined;
  const timers = killPlan<Victim>(seed, 700, VICTIMS, 300).map(({ atMs, victim, pauseMs }) =>
    setTimeout(() => {
      notes.push(`${victim}@${Math.round(performance.now() - started)}ms`);
      report.kills[victim]++;
      if (victim !== "gateway" && node) killNow(node.pid);
      if (victim !== "plugin") killGateway(rgw, pauseMs);
    }, atMs)
  );
  const compactions: Promise<void>[] = [];
  for (const atMs of compactPlan(seed)) {
    timers.push(setTimeout(() => {
      const at = Math.round(performance.now() - started);
      compactions.push(
        node!.request("backup-compact", {}).then(
          (answer) =>
            notes.push(
              `compact@${at}ms ${
                answer.error ? `refused (${JSON.stringify(answer.error)})` : "done"
              }`,
            ),
          () => notes.push(`compact@${at}ms cut`),
        ).then(() => {}),
      );
    }, atMs));
  }
  try {
    let next: RecordedWrite | undefined = all.runs[2].writes[0];
    while (next !== undefined && next.index <= last.index) {
      const run = all.runs[next.run];
      const { bytes, messages } = resumedStream(run, next);
      const cut = messages.find((m) => m.id === last.id)?.end ?? bytes.length;
      node = FakeLightningd.spawn({ lightningDir: dir, env: PLUGIN_ENV });
      node.volatileCommits();
      report.processes++;
      const context = `seed ${seed}, run ${run.name}, process ${report.processes}`;
      const killed = await replayProcess(node, bytes.subarray(0, cut), all, context);
      if (killed) {
        next = killed.resume;
        continue;
      }
      break;
    }
    for (const timer of timers) clearTimeout(timer);
    await restarting;
    await Promise.all(compactions);
    const nodeVersion = dataVersionOf(`${dir}/lightningd.sqlite3`);
    assertEquals(nodeVersion, last.dataVersion, `seed ${seed}: the node reached the last write`);
    const expected = dumpDatabase(`${dir}/lightningd.sqlite3`);
    const key = template.key;
    const reader = await S3BackupReader.fetch(
      url,
      rgw.credentials,
      { timeoutMs: 5_000, retries: 8, retryDelayMs: 100, backoff: 2 },
      undefined,
      key && (() => Promise.resolve(key)),
    );
    try {
      const stored = storedTransactions(reader, `seed ${seed}`);
      // Nothing acknowledged is missing, nothing is stored twice; the backup may hold one
      // change more than the node (stored, then the node stopped before committing it). A
      // compaction's base holds the transactions up to its version.
      const base = reader.describe().snapshots.at(-1) ?? 0;
      const committed = all.transactions.filter((t) =>
        t.version > base && t.version <= nodeVersion
      );
      assertEquals(stored.slice(0, committed.length), committed, `seed ${seed}: stored`);
      assert(stored.length <= committed.length + 1, `seed ${seed}: at most one ahead`);
      // A change one ahead is what a crash just after its commit would have left: the
      // restore to the node's version must equal the node.
      restoreBackup(reader, `${root}/restored.sqlite3`, { toVersion: nodeVersion });
    } finally {
      reader.close();
    }
    const restored = `${root}/restored.sqlite3`;
    assertEquals(dumpDatabase(restored), expected, `seed ${seed}: restore`);
  } finally {
    for (const timer of timers) clearTimeout(timer);
    if (node) await node.kill().catch(() => {});
    await restarting.catch(() => {});
    Deno.removeSync(root, { recursive: true });
  }
  report.line = `seed ${seed}${template.key ? " (encrypted)" : ""}: ` +
    `${notes.join(", ") || "no kill landed"} -> ${report.processes} ` +
    `plugin runs; ${Math.round(performance.now() - started)} ms`;
  return report;
}

// A gateway of its own: the trials kill it.
rgwTest(
  "crash safety into S3: SIGKILL the plugin and the gateway at random moments",
  () =>
    withOwnRgw(async (rgw) => {
      const all = loadRuns();
      // Even seeds run on an encrypted backup: the packer and compaction seal what they write.
      const templates: Template[] = [
        { dir: Deno.makeTempDirSync({ prefix: "s3-crash-template-" }), prefix: "template" },
        {
          dir: Deno.makeTempDirSync({ prefix: "s3-crash-template-" }),
          prefix: "template-encrypted",
          key: await DataKey.generate(),
        },
      ];
      try {
        const bucket = await rgw.bucket();
        for (const template of templates) await buildTemplate(rgw, bucket, template, all);
        await runKillTrials<Victim>({
          env: "S3_CRASH",
          trials: 100,
          concurrency: 3,
          victims: { plugin: "the plugin", gateway: "the gateway", both: "both" },
          run: (seed) => runTrial(rgw, bucket, seed, all, templates[seed % 2 === 0 ? 1 : 0]),
        });
      } finally {
        await restarting.catch(() => {});
        for (const { dir } of templates) Deno.removeSync(dir, { recursive: true });
      }
    }),
);
