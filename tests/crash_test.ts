/**
 * Crash safety: the plugin is killed (SIGKILL) at random points of a replay of the recorded
 * runs (fresh-start, restart, activity: one lightning dir, one plugin process per run), the
 * fake lightningd restarts as lightningd would (it rolls back what it did not commit, starts a
 * new plugin process, sends `getmanifest` and resumes at the first `db_write` its database does
 * not hold), the replay finishes, and every trial must end with the fake's committed database
 * equal to the recorded one and a restore of the backup equal to it.
 *
 * Kill points (see `plan` in support/crash_point.ts): the crash seam of lib/fs/crash_point.ts at an exact
 * phase of the n-th append (before the write, half the record written, written but not synced,
 * synced but not answered), a SIGKILL a few ms after the answer before a chosen hook (anywhere
 * in the fake's transaction, the plugin's parsing, append, fsync or answer), and a SIGKILL while
 * the plugin is idle between hooks. A third of the trials crash twice, often right after the
 * restart's rewind or torn-tail cut; half of the crashes before the sync also simulate a power
 * cut (the unsynced tail cut at a random length). After each crash the next plugin start must
 * log exactly the repair the state calls for: the torn-tail cut, the rewind of a change the
 * node did not commit ("dropping change N"), or "in step".
 *
 * Every trial is determined by its seed, which is printed: replay some with
 * `CRASH_SEEDS=17,42 deno test -A tests/crash_test.ts`. `CRASH_TRIALS` (default 200),
 * `CRASH_WORKERS` (default 2) and `CRASH_CONCURRENCY` (trials per worker, default 2) tune the
 * run. A random-time kill also depends on timing: its seed replays its plan, not always where
 * it lands. The same trials run again on encrypted backups (`CRASH_ENCRYPTED_TRIALS`, default
 * 100): a torn sealed record must read as torn, and every record must still open.
 *
 * @module
 */
import { assert, assertEquals } from "./support/assert.ts";
import {
  buildTemplate,
  type Crash,
  KINDS,
  loadRuns,
  type TrialReport,
  type WorkerReply,
  type WorkerRequest,
} from "./support/crash_point.ts";
import { envNumber, trialSeeds } from "./support/seeded_trials.ts";
import { DataKey } from "../lib/crypto/data_key.ts";

/** Runs the trials of `seeds` on `workers` workers, `concurrency` at a time on each. */
async function runTrials(
  seeds: number[],
  template: string,
  workers: number,
  concurrency: number,
  key: DataKey | undefined,
): Promise<{ reports: TrialReport[]; failures: string[]; ignored: number }> {
  const reports: TrialReport[] = [];
  const failures: string[] = [];
  const ignored: number[] = [];
  const queue = [...seeds];
  const pool = Array.from({ length: workers }, (_, w) => {
    const worker = new Worker(new URL("./support/crash_point.ts", import.meta.url).href, {
      type: "module",
    });
    const send = (request: WorkerRequest) => worker.postMessage(request);
    const done = new Promise<void>((resolve, reject) => {
      let running = 0;
      const dispatch = () => {
        while (running < concurrency && queue.length > 0) {
          running++;
          send({ seed: queue.shift()! });
        }
        if (running === 0) resolve();
      };
      worker.onmessage = ({ data }: MessageEvent<WorkerReply>) => {
        running--;
        ignored[w] = data.ignored;
        if ("report" in data) {
          console.log(data.report.line);
          reports.push(data.report);
        } else {
          console.log(`seed ${data.seed}: FAILED\n${data.error}`);
          failures.push(`seed ${data.seed}: ${data.error.split("\n")[0]}`);
        }
        dispatch();
      };
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`crash worker ${w} failed: ${event.message}`));
      };
      send({ template, key: key?.bytes });
      dispatch();
    });
    return { worker, done };
  });
  try {
    await Promise.all(pool.map((p) => p.done));
  } finally {
    for (const { worker } of pool) worker.terminate();
  }
  return { reports, failures, ignored: ignored.reduce((a, b) => a + b, 0) };
}

/**
 * Runs the trials (`CRASH_SEEDS`, or `trials` of them) on file backups, encrypted with a new
 * key when `encrypted`, and checks that they exercised what they are for.
 */
async function crashSafety(trials: number, encrypted: boolean): Promise<void> {
  const all = loadRuns();
  const { seeds, chosen } = trialSeeds("CRASH_SEEDS", trials);
  const template = Deno.makeTempDirSync({ prefix: "cln-backup-crash-template-" });
  const key = encrypted ? await DataKey.generate() : undefined;
  const started = performance.now();
  let result;
  try {
    await buildTemplate(template, all, key);
    result = await runTrials(
      seeds,
      template,
      envNumber("CRASH_WORKERS", 2),
      envNumber("CRASH_CONCURRENCY", 2),
      key,
    );
  } finally {
    Deno.removeSync(template, { recursive: true });
  }
  const { reports, failures, ignored } = result;
  const landed = new Map<Crash["kind"], number>(KINDS.map((kind) => [kind, 0]));
  for (const report of reports) {
    for (const kind of report.crashes) landed.set(kind, landed.get(kind)! + 1);
  }
  const sum = (f: (r: TrialReport) => number) => reports.reduce((n, r) => n + f(r), 0);
  console.log(
    `${encrypted ? "encrypted: " : ""}${seeds.length} trials in ${
      Math.round(performance.now() - started)
    } ms, ` +
      `${failures.length} failed: ${sum((r) => r.crashes.length)} crashes (${
        [...landed].map(([k, n]) => `${k} ${n}`).join(", ")
      }), ${sum((r) => r.missed.length)} random kills too late (the process had ended), ` +
      `${sum((r) => r.checked)} restarts checked, ${sum((r) => r.rewinds)} rewinds, ` +
      `${sum((r) => r.tornCuts)} torn tails cut, ${sum((r) => r.processes)} plugin runs, ` +
      `${ignored} writes to a dead plugin`,
  );
  assertEquals(failures, []);
  assertEquals(reports.length, seeds.length);
  if (!chosen) {
    // The trials did exercise what they are for (plans come from the seeds, so this is stable).
    for (const [kind, n] of landed) assert(n >= seeds.length / 10, `${kind} landed ${n} times`);
    assert(sum((r) => r.rewinds) >= seeds.length / 5, "too few rewinds were exercised");
    assert(sum((r) => r.tornCuts) >= seeds.length / 5, "too few torn tails were exercised");
    assert(sum((r) => r.checked) >= sum((r) => r.crashes.length) * 0.9, "restarts unchecked");
  }
}

Deno.test("crash safety: SIGKILL at random points of the recorded runs, restart, restore", async () => {
  await crashSafety(envNumber("CRASH_TRIALS", 200), false);
});

Deno.test("crash safety of an encrypted backup: the same trials, every record sealed", async () => {
  await crashSafety(envNumber("CRASH_ENCRYPTED_TRIALS", 100), true);
});
