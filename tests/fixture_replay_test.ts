/**
 * The three recorded lightningd runs (fresh-start, restart, activity), replayed in order
 * through the real plugin process on one backup, in several chunkings of what lightningd
 * wrote: as recorded, random (seed in the test name, so a failure can be replayed), and one
 * byte at a time.
 *
 * One byte at a time is the whole chain, activity included: the 1.27 MB of activity took
 * about 6 s on an idle 2-core machine and up to 20 s with other suites running, well under
 * the 60 s at which it would have been cut to fresh-start and restart at 1 byte and activity
 * in chunks of 1..7 bytes.
 */
import { assert, assertEquals } from "./support/assert.ts";
import {
  type Chunking,
  DATABASE_NAME,
  FakeLightningd,
  splitMessages,
} from "./support/fake_lightningd.ts";
import { type Fixture, loadFixture, SCENARIOS } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";

const fixtures = SCENARIOS.map(loadFixture);
const dumps = new Map<string, string>();
/** The fixture database's dump, computed once for all the chunkings. */
function expectedDump(fixture: Fixture): string {
  let dump = dumps.get(fixture.name);
  if (dump === undefined) dumps.set(fixture.name, dump = dumpDatabase(fixture.database));
  return dump;
}
/** Per run; one byte at a time, activity takes 6 to 20 s. */
const REPLAY_TIMEOUT_MS = 120_000;

/** Replays the three runs in order on one lightning dir and backup, checking each. */
async function replayChain(chunking: (fixture: Fixture) => Chunking): Promise<void> {
  const dir = Deno.makeTempDirSync();
  try {
    const url = `file://${dir}/backup`;
    createFileBackup(`${dir}/backup`);
    writeLockFile(dir, { backend_url: url });
    for (const fixture of fixtures) {
      const node = FakeLightningd.spawn({ lightningDir: dir, chunking: chunking(fixture) });
      // The node's own database need not survive a power cut here: skipping its fsyncs cuts
      // the run time by two thirds on a busy disk. The plugin still syncs every change.
      node.db.exec("PRAGMA synchronous = OFF");
      // A message the plugin failed to frame is never answered: kill it rather than hang.
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          Deno.kill(node.pid, "SIGKILL");
        } catch {
          // It exited meanwhile.
        }
      }, REPLAY_TIMEOUT_MS);
      let outcome;
      let status;
      try {
        outcome = await node.replay(fixture.raw);
      } finally {
        status = await node.close();
        clearTimeout(timer);
      }
      assert(
        !timedOut,
        `${fixture.name}: no answer within ${REPLAY_TIMEOUT_MS} ms; plugin logs: ` +
          JSON.stringify(node.logs.slice(-3)),
      );
      assertEquals(status.code, 0, `${fixture.name}: plugin exit code`);
      assertEquals(outcome, "committed", `${fixture.name}: ${node.aborted}`);
      assertEquals(node.garbage, [], `${fixture.name}: stdout carries only JSON-RPC`);
      // Every db_write answered continue, in the order lightningd sent them.
      const ids = splitMessages(fixture.raw)
        .filter((m) => m.json.method === "db_write")
        .map((m) => m.json.id);
      assertEquals(ids.length, fixture.summary.db_write_calls);
      const wanted = new Set(ids);
      const answers = node.received.filter((m) => m.method === undefined && wanted.has(m.id));
      assertEquals(answers.map((m) => m.id), ids, `${fixture.name}: answers in order`);
      for (const answer of answers) {
        assertEquals(answer.result, { result: "continue" }, `${fixture.name}: ${answer.id}`);
      }
      // Nothing unusual: a framing slip shows up as a malformed message logged here.
      assertEquals(
        node.logs.filter((l) => l.level !== "info" && l.level !== "debug"),
        [],
        `${fixture.name}: logs`,
      );
      const expected = expectedDump(fixture);
      assertEquals(dumpDatabase(`${dir}/${DATABASE_NAME}`), expected, `${fixture.name}: node db`);
      const restored = `${dir}/restored-${fixture.name}.sqlite3`;
      const reader = openReader(url);
      try {
        restoreBackup(reader, restored);
      } finally {
        reader.close();
      }
      assertEquals(dumpDatabase(restored), expected, `${fixture.name}: restore`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("replay: recorded runs in recorded chunking restore equal to the node", async () => {
  await replayChain((fixture) => ({ kind: "sizes", sizes: fixture.chunks }));
});

/** Fixed seeds, plus one new each run; set CLN_BACKUP_SEED to replay a failing one. */
const envSeed = Deno.env.get("CLN_BACKUP_SEED");
const freshSeed = envSeed !== undefined
  ? Number(envSeed)
  : crypto.getRandomValues(new Uint32Array(1))[0];
const RANDOM: { seed: number; max: number }[] = [
  { seed: 1, max: 16 },
  { seed: 2, max: 3000 },
  { seed: freshSeed, max: 70_000 },
];

for (const { seed, max } of RANDOM) {
  Deno.test(`replay: recorded runs in random chunking (seed ${seed}, 1..${max} bytes)`, async () => {
    await replayChain(() => ({ kind: "random", seed, max }));
  });
}

Deno.test("replay: recorded runs one byte at a time", async () => {
  await replayChain(() => ({ kind: "bytes", size: 1 }));
});
