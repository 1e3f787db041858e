/**
 * Crash safety over the wire: the recorded runs (fresh-start, restart, activity) go through
 * `socket:` into our server, run as its own process, while the plugin, the server or both are
 * killed with SIGKILL at random moments. lightningd restarts as it would (it rolls back what
 * it did not commit, starts a new plugin and resumes at the first `db_write` its database
 * lacks); a killed server is started again on the same port and storage after a random pause,
 * while the plugin reconnects. Every trial must end with the node's database equal to the
 * recorded one, the server's backup holding every committed transaction exactly once, and a
 * restore equal to the node.
 *
 * `SOCKET_CRASH_TRIALS` (default 100) and `SOCKET_CRASH_CONCURRENCY` (default 3) tune the
 * run; `SOCKET_CRASH_SEEDS=4,17` replays chosen trials (kill times also depend on timing).
 *
 * @module
 */
import { assertEquals } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { killPlan } from "./support/kill_plan.ts";
import {
  killNow,
  loadRuns,
  type RecordedWrite,
  replayProcess,
  resumedStream,
  type Runs,
  storedTransactions,
} from "./support/crash_point.ts";
import { freePort, spawnServer } from "./support/server_process.ts";
import { type KillReport, runKillTrials } from "./support/seeded_trials.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { restoreBackup } from "../lib/backup/restore.ts";

/**
 * Enough patience to outlast a server restart, which on a loaded machine takes seconds
 * (reconnects over about 25 s); every wait still bounded.
 */
const PATIENCE = { socket_timeout_s: 5, socket_retries: 16, socket_retry_delay_s: 0.02 };

const VICTIMS = ["plugin", "server", "both"] as const;
type Victim = typeof VICTIMS[number];

type TrialReport = KillReport<Victim>;

const PARENT = Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined;

function copyDir(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isDirectory) copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else Deno.copyFileSync(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** Replays fresh-start and restart into a server: the common start of most trials. */
async function buildTemplate(template: string, all: Runs): Promise<void> {
  const port = freePort();
  const server = await spawnServer(`${template}/served`, port);
  try {
    Deno.mkdirSync(`${template}/node`);
    writeLockFile(`${template}/node`, { backend_url: `socket:127.0.0.1:${port}` });
    for (const run of all.runs.slice(0, 2)) {
      const node = FakeLightningd.spawn({ lightningDir: `${template}/node` });
      assertEquals(await node.replay(run.raw), "committed");
      assertEquals((await node.close()).code, 0);
    }
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await server.stderr.cancel();
  }
}

async function runTrial(
  seed: number,
  all: Runs,
  expected: string,
  template: string,
): Promise<TrialReport> {
  const started = performance.now();
  const root = Deno.makeTempDirSync({ prefix: "socket-crash-", dir: PARENT });
  const storage = `${root}/served`;
  const port = freePort();
  // Three trials in four start at activity from the template; the rest from an empty backup.
  const fromTemplate = seed % 4 !== 0;
  if (fromTemplate) copyDir(template, root);
  let server = await spawnServer(storage, port);
  const report: TrialReport = {
    seed,
    kills: { plugin: 0, server: 0, both: 0 },
    processes: 0,
    line: "",
  };
  const notes: string[] = [];
  let node: FakeLightningd | undefined;
  let restarting: Promise<void> = Promise.resolve();
  const timers = killPlan<Victim>(seed, fromTemplate ? 700 : 1500, VICTIMS, 200).map((
    { atMs, victim, pauseMs },
  ) =>
    setTimeout(() => {
      notes.push(`${victim}@${Math.round(performance.now() - started)}ms`);
      report.kills[victim]++;
      if (victim !== "server" && node) killNow(node.pid);
      if (victim !== "plugin") {
        // After any restart still under way: one server at a time on the storage.
        restarting = restarting.then(async () => {
          killNow(server.pid);
          await server.status;
          await new Promise((r) => setTimeout(r, pauseMs));
          server = await spawnServer(storage, port);
        });
      }
    }, atMs)
  );
  try {
    const dir = `${root}/node`;
    Deno.mkdirSync(dir, { recursive: true });
    writeLockFile(dir, { backend_url: `socket:127.0.0.1:${port}`, ...PATIENCE });
    let next: RecordedWrite | undefined = fromTemplate ? all.runs[2].writes[0] : all.writes[0];
    while (next !== undefined) {
      const run = all.runs[next.run];
      const { bytes } = resumedStream(run, next);
      node = FakeLightningd.spawn({ lightningDir: dir });
      node.volatileCommits();
      report.processes++;
      const context = `seed ${seed}, run ${run.name}, process ${report.processes}`;
      const killed = await replayProcess(node, bytes, all, context);
      if (killed) {
        next = killed.resume;
        continue;
      }
      next = all.runs[next.run + 1]?.writes[0];
    }
    for (const timer of timers) clearTimeout(timer);
    await restarting;
    try {
      server.kill("SIGTERM");
    } catch (error) {
      throw new Error(
        `seed ${seed}: the server died: ${await new Response(server.stderr).text()}`,
        { cause: error },
      );
    }
    assertEquals((await server.status).code, 0, `seed ${seed}: the server stops cleanly`);
    assertEquals(dumpDatabase(`${dir}/lightningd.sqlite3`), expected, `seed ${seed}: node`);
    const reader = new FileBackupReader(`file://${storage}`, storage);
    const stored = storedTransactions(reader, `seed ${seed}`);
    assertEquals(stored, all.transactions, `seed ${seed}: stored transactions`);
    restoreBackup(reader, `${root}/restored.sqlite3`);
    assertEquals(dumpDatabase(`${root}/restored.sqlite3`), expected, `seed ${seed}: restore`);
  } finally {
    for (const timer of timers) clearTimeout(timer);
    await restarting.catch(() => {});
    killNow(server.pid);
    await server.status;
    await server.stderr.cancel().catch(() => {});
    Deno.removeSync(root, { recursive: true });
  }
  report.line = `seed ${seed}: ${notes.join(", ") || "no kill landed"} -> ${report.processes} ` +
    `plugin runs; ${Math.round(performance.now() - started)} ms`;
  return report;
}

Deno.test("crash safety over the wire: SIGKILL plugin and server at random moments", async () => {
  const all = loadRuns();
  const expected = dumpDatabase(all.runs.at(-1)!.database);
  const template = Deno.makeTempDirSync({ prefix: "socket-crash-template-", dir: PARENT });
  await buildTemplate(template, all);
  try {
    await runKillTrials<Victim>({
      env: "SOCKET_CRASH",
      trials: 100,
      concurrency: 3,
      victims: { plugin: "the plugin", server: "the server", both: "both" },
      run: (seed) => runTrial(seed, all, expected, template),
    });
  } finally {
    Deno.removeSync(template, { recursive: true });
  }
});
