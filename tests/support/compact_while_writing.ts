/**
 * Drives the activity run's hooks through a plugin while asking `backup-compact` at many
 * points, each request overlapping the hooks that follow it: the shared loop of the tests
 * of compaction in the running plugin, local and remote.
 *
 * @module
 */
import { assert, assertEquals } from "./assert.ts";
import { type FakeLightningd, splitMessages } from "./fake_lightningd.ts";
import { loadFixture } from "./fixtures.ts";

/** The activity run's db_writes, as lightningd sent them. */
export function activityWrites(): { version: number; writes: string[] }[] {
  return splitMessages(loadFixture("activity").raw)
    .filter((m) => m.json.method === "db_write")
    .map((m) => ({ version: m.json.params.data_version, writes: m.json.params.writes }));
}

export interface CompactionRun {
  /** Each `backup-compact` answer's result. */
  results: Record<string, unknown>[];
  /** Hooks answered while a `backup-compact` was still pending. */
  overlapped: number;
}

/**
 * Sends every hook, each committed, with `backup-compact` asked every 70 hooks. A compaction
 * still running at the next point is waited for first, so the number of compactions does not
 * depend on how fast the machine folds against how fast hooks come.
 */
export async function compactWhileWriting(lightningd: FakeLightningd): Promise<CompactionRun> {
  const results: Record<string, unknown>[] = [];
  let overlapped = 0;
  let pending: Promise<Record<string, unknown>> | undefined;
  let answered = false;
  const collect = async () => {
    const answer = await pending!;
    assert(answer.result, `backup-compact failed: ${JSON.stringify(answer.error)}`);
    results.push(answer.result as Record<string, unknown>);
    pending = undefined;
  };
  for (const [i, { version, writes }] of activityWrites().entries()) {
    if (i % 70 === 35) {
      if (pending !== undefined) await collect();
      answered = false;
      pending = lightningd.request("backup-compact", []);
      pending.then(() => answered = true, () => answered = true);
    }
    assertEquals(await lightningd.dbWrite(version, writes), "committed", lightningd.aborted);
    if (pending !== undefined && !answered) overlapped++;
    if (pending !== undefined && answered) await collect();
  }
  if (pending) await collect();
  return { results, overlapped };
}
