/**
 * The harness of the kill tests (socket_crash_test.ts, s3_crash_test.ts): many trials, each
 * determined by its seed, run a few at a time while processes (the victims) are killed at
 * random moments. Shared so that every such test replays seeds, reports failures and checks
 * its coverage the same way: `<ENV>_SEEDS=4,17` replays chosen trials, `<ENV>_TRIALS` and
 * `<ENV>_CONCURRENCY` set the count and how many run at once; a failed trial is printed with
 * its seed and the others still run, so one run names every failing seed; and when no seeds
 * were chosen, each victim must have been killed in at least a fifth of the trials, or they
 * did not test what they are for. crash_test.ts, whose trials run in workers, shares only
 * the rules for the environment variables and seeds.
 *
 * @module
 */
import { assert, assertEquals } from "./assert.ts";

/** The number in environment variable `name`, or `fallback` when it is unset. */
export function envNumber(name: string, fallback: number): number {
  const value = Deno.env.get(name);
  return value === undefined ? fallback : Number(value);
}

/** The seeds `variable` chooses (`4,17`), or else 1 to `count`; `chosen` says which. */
export function trialSeeds(variable: string, count: number): { seeds: number[]; chosen: boolean } {
  const chosen = Deno.env.get(variable)?.split(",").map(Number);
  return { seeds: chosen ?? Array.from({ length: count }, (_, i) => i + 1), chosen: !!chosen };
}

/** What a trial that passed reports. */
export interface KillReport<V extends string> {
  seed: number;
  /** How many kills of each victim landed. */
  kills: Record<V, number>;
  /** Plugin processes the trial started. */
  processes: number;
  /** The trial's line in the log. */
  line: string;
}

export interface KillTrials<V extends string> {
  /** The stem of the environment variables: `SOCKET_CRASH` for `SOCKET_CRASH_SEEDS`. */
  env: string;
  /** Trials to run unless `<env>_TRIALS` says otherwise. */
  trials: number;
  /** Trials at once unless `<env>_CONCURRENCY` says otherwise. */
  concurrency: number;
  /** Each victim, in the summary's order, with its name there: `{ server: "the server" }`. */
  victims: Record<V, string>;
  /** Runs trial `seed`; a throw fails it. */
  run: (seed: number) => Promise<KillReport<V>>;
}

/**
 * Runs the trials, prints each one's line (or its failure) and a summary, then fails unless
 * every trial passed and, when no seeds were chosen, every victim was killed often enough.
 */
export async function runKillTrials<V extends string>(options: KillTrials<V>): Promise<void> {
  const { env, victims, run } = options;
  const { seeds, chosen } = trialSeeds(`${env}_SEEDS`, envNumber(`${env}_TRIALS`, options.trials));
  const queue = [...seeds];
  const reports: KillReport<V>[] = [];
  const failures: string[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: envNumber(`${env}_CONCURRENCY`, options.concurrency) }, async () => {
      for (let seed = queue.shift(); seed !== undefined; seed = queue.shift()) {
        try {
          const report = await run(seed);
          console.log(report.line);
          reports.push(report);
        } catch (error) {
          console.log(`seed ${seed}: FAILED ${(error as Error).message.slice(0, 2000)}`);
          failures.push(`seed ${seed}`);
        }
      }
    }),
  );
  const names = Object.keys(victims) as V[];
  const sum = (victim: V) => reports.reduce((n, r) => n + r.kills[victim], 0);
  console.log(
    `${seeds.length} trials in ${Math.round(performance.now() - started)} ms, ` +
      `${failures.length} failed: kills of ${
        names.map((victim) => `${victims[victim]} ${sum(victim)}`).join(", ")
      }; ${reports.reduce((n, r) => n + r.processes, 0)} plugin runs`,
  );
  assertEquals(failures, []);
  if (!chosen) {
    for (const victim of names) {
      assert(sum(victim) >= seeds.length / 5, `${victim} killed ${sum(victim)} times`);
    }
  }
}
