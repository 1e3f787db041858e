/**
 * The three recorded lightningd runs (fresh-start, restart, activity), replayed in order
 * through the real plugin process on one backup, in several chunkings of what lightningd
 * wrote: as recorded, random (seed in the test name, so a failure can be replayed), and one
 * byte at a time. And rpc-options, whole, on a node of its own, in the same chunkings.
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
  testPlugin,
} from "./support/fake_lightningd.ts";
import {
  type Fixture,
  loadFixture,
  loadRpcOptionsDriver,
  RECORDED_OPTIONS_IN_FORCE,
  RPC_OPTIONS,
  SCENARIOS,
} from "./support/fixtures.ts";
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

/** Replays one run on `dir` with `node`, killing a plugin that stops answering. */
async function replayRun(
  node: FakeLightningd,
  fixture: Fixture,
  raw: Uint8Array = fixture.raw,
): Promise<void> {
  // The node's own database need not survive a power cut here: skipping its fsyncs cuts
  // the run time by two thirds on a busy disk. The plugin still syncs every change.
  node.volatileCommits();
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
    outcome = await node.replay(raw);
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
  const ids = splitMessages(raw)
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
}

/** The node's database and a restore of the backup both equal the recorded database. */
function assertRestores(dir: string, url: string, fixture: Fixture): void {
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

/** A lightning dir with an empty backup and backup.lock; removed after `fn`. */
async function withNode(fn: (dir: string, url: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync();
  try {
    const url = `file://${dir}/backup`;
    createFileBackup(`${dir}/backup`);
    writeLockFile(dir, { backend_url: url });
    await fn(dir, url);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Replays the three runs in order on one lightning dir and backup, checking each. */
async function replayChain(chunking: (fixture: Fixture) => Chunking): Promise<void> {
  await withNode(async (dir, url) => {
    for (const fixture of fixtures) {
      const node = FakeLightningd.spawn({ lightningDir: dir, chunking: chunking(fixture) });
      await replayRun(node, fixture);
      assertRestores(dir, url, fixture);
    }
  });
}

// --- rpc-options ---------------------------------------------------------------------------------

const rpcOptions = loadFixture(RPC_OPTIONS);
const driver = loadRpcOptionsDriver();
const RAW_ID = "7/cln:backup-status#133";

/**
 * The recording with a blank line added inside the raw socket request: lightningd passes a
 * caller's bytes as they are (checked apart from the recording).
 */
function withBlankLine(raw: Uint8Array): Uint8Array {
  const text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  const anchor = `"id": "${RAW_ID}",\n`;
  assert(text.split(anchor).length === 2, "the raw request is in the recording once");
  return new TextEncoder().encode(text.replace(anchor, `${anchor}\n`));
}
const rpcOptionsRaw = withBlankLine(rpcOptions.raw);

/** As the recorded plugin was: its options, and backup-compact pending during hooks 55..180. */
const COMPACT_UNTIL = 180;
const recorder = testPlugin({
  options: driver.options,
  hold: { method: "backup-compact", version: COMPACT_UNTIL },
  standIns: true,
});

/** What backup-status refuses each recorded call with, by id. */
function paramsError(what: string, params: unknown) {
  return {
    code: -32602,
    message: `Cannot run backup-status: ${what}; it takes no parameters`,
    data: { params },
  };
}

/**
 * Replays rpc-options whole (init options, setconfig, forwarded calls, hooks as recorded) on
 * a node of its own, and checks each answer: the hooks in order and never behind the pending
 * backup-compact; the calls answered as the plugin answers them; the database, and a restore
 * of the backup, equal to the recorded database.
 */
async function replayRpcOptions(chunking: Chunking): Promise<void> {
  await withNode(async (dir, url) => {
    const node = FakeLightningd.spawn({ lightningDir: dir, chunking, ...recorder });
    await replayRun(node, rpcOptions, rpcOptionsRaw);
    assertRestores(dir, url, rpcOptions);

    const messages = splitMessages(rpcOptionsRaw);
    const answers = node.received.filter((m) => m.method === undefined);
    const answerAt = (id: unknown) => answers.findIndex((m) => m.id === id);
    const answer = (id: unknown) => answers[answerAt(id)];
    const calls = messages.filter((m) => m.json.id !== undefined && m.json.method !== "db_write");
    assertEquals(calls.length, 10);
    for (const call of calls) assert(answerAt(call.json.id) !== -1, `${call.json.id} answered`);

    const byMethod = (method: string) => calls.filter((m) => m.json.method === method);
    const manifest = answer(byMethod("getmanifest")[0].json.id).result as Record<string, unknown>;
    assertEquals(manifest.options, driver.options);
    assertEquals(
      (manifest.rpcmethods as { name: string }[]).map((m) => m.name),
      ["backup-status", "backup-compact", "backup-fail"],
    );
    assertEquals(answer(byMethod("init")[0].json.id).result, {});
    assertEquals(answer(byMethod("setconfig")[0].json.id).result, {});

    // Every hook sent while backup-compact was pending was answered before it returned.
    const compact = byMethod("backup-compact")[0];
    const hookVersion = (m: { json: { params: { data_version: number } } }) =>
      m.json.params.data_version;
    const hooks = messages.filter((m) => m.json.method === "db_write");
    const during = hooks.filter((m) => m.end > compact.end && hookVersion(m) <= COMPACT_UNTIL);
    assertEquals(during.length, 126);
    assertEquals(answer(compact.json.id).result, {});
    for (const hook of during) assert(answerAt(hook.json.id) < answerAt(compact.json.id));
    const next = hooks.find((m) => hookVersion(m) === COMPACT_UNTIL + 1)!;
    assert(answerAt(compact.json.id) < answerAt(next.json.id), "released after hook 180");

    // backup-status: answered at once (before the next hook), options as set by setconfig.
    const [plain, named, listed, raw] = byMethod("backup-status");
    for (const call of [plain, named, listed, raw]) {
      const following = hooks.find((m) => m.end > call.end)!;
      assert(answerAt(call.json.id) < answerAt(following.json.id), `${call.json.id} at once`);
    }
    const report = answer(plain.json.id).result as Record<string, unknown>;
    const before = hooks.filter((m) => m.end < plain.end);
    assertEquals(report.ok, true);
    assertEquals(report.version, hookVersion(before.at(-1)!));
    assertEquals(report.writes_since_start, before.length);
    assertEquals(report.options, RECORDED_OPTIONS_IN_FORCE);
    assertEquals(
      answer(named.json.id).error,
      paramsError('no parameter "verbose"', { verbose: true }),
    );
    assertEquals(answer(listed.json.id).error, paramsError("1 parameter given", [true]));
    assertEquals(raw.json.id, RAW_ID);
    assertEquals(answer(RAW_ID).error, paramsError('no parameter "via"', { via: "raw socket" }));
    for (const call of byMethod("backup-fail")) {
      assertEquals(answer(call.json.id).error, driver.errors["backup-fail"]);
    }
  });
}

Deno.test("replay: rpc-options in recorded chunking restores equal to the node", async () => {
  await replayRpcOptions({ kind: "sizes", sizes: rpcOptions.chunks });
});

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
  Deno.test(`replay: rpc-options in random chunking (seed ${seed}, 1..${max} bytes)`, async () => {
    await replayRpcOptions({ kind: "random", seed, max });
  });
}

Deno.test("replay: recorded runs one byte at a time", async () => {
  await replayChain(() => ({ kind: "bytes", size: 1 }));
});

Deno.test("replay: rpc-options one byte at a time", async () => {
  await replayRpcOptions({ kind: "bytes", size: 1 });
});
