/**
 * The machinery of the crash tests (tests/crash_test.ts): the recorded runs as one sequence of
 * `db_write`s, where a restarted lightningd resumes, the stream it sends, lightning dirs with a
 * file backup, and one crash trial from its seed. Run as a worker, it runs the trials it is
 * sent, so that the test's own work (the fake's SQLite, restores, dumps) uses every core.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { FakeLightningd, splitMessages } from "./fake_lightningd.ts";
import { prng } from "./prng.ts";
import { dumpDatabase } from "./dump.ts";
import { loadFixture, SCENARIOS } from "./fixtures.ts";
import { CRASH_ENV, CRASH_PHASES, type CrashPhase } from "../../lib/fs/crash_point.ts";
import { createFileBackup } from "../../lib/backends/file/create.ts";
import { writeAll } from "../../lib/fs/durable.ts";
import { openReader } from "../../lib/backends/open.ts";
import type { BackupReader } from "../../lib/backends/backend.ts";
import { writeLockFile } from "../../lib/backup/lock_file.ts";
import { restoreBackup } from "../../lib/backup/restore.ts";
import { readLayout } from "../../lib/format/layout.ts";
import { dataEnd, scanSegment } from "../../lib/format/segment.ts";
import { readChain } from "../../lib/format/chain.ts";
import { FileBackupReader } from "../../lib/backends/file/reader.ts";
import { DataKey } from "../../lib/crypto/data_key.ts";
import { KEY_FILE, writeKeyFile } from "../../lib/crypto/key_file.ts";
import { makeEncryptedBackup } from "./encrypted.ts";
import { isPragmaOnly } from "../../lib/sqlite/apply.ts";

/** One `db_write` of the recorded runs. */
export interface RecordedWrite {
  /** Position among all the runs' `db_write`s, from 0. */
  index: number;
  run: number;
  /** Position of its message in its run. */
  message: number;
  id: string;
  dataVersion: number;
  /** A `PRAGMA`-only hook: no bump, repeats the version, runs outside a transaction. */
  pragma: boolean;
}

/** One recorded run (a lightningd process from start to stop). */
export interface Run {
  name: string;
  raw: Uint8Array;
  /** Where each message ends in `raw`. */
  ends: number[];
  methods: string[];
  ids: unknown[];
  writes: RecordedWrite[];
  /** Database dump at the end of the run. */
  database: string;
}

/** The recorded runs in order, and all their `db_write`s in one sequence. */
export interface Runs {
  runs: Run[];
  writes: RecordedWrite[];
  /** The transactions of all runs (the writes that are not `PRAGMA` hooks), in order. */
  transactions: { version: number; statements: string[] }[];
}

export function loadRuns(): Runs {
  const writes: RecordedWrite[] = [];
  const transactions: Runs["transactions"] = [];
  const runs = SCENARIOS.map((name, run) => {
    const fixture = loadFixture(name);
    const messages = splitMessages(fixture.raw);
    const own: RecordedWrite[] = [];
    messages.forEach(({ json }, message) => {
      if (json.method !== "db_write") return;
      const write = {
        index: writes.length,
        run,
        message,
        id: json.id,
        dataVersion: json.params.data_version,
        pragma: isPragmaOnly(json.params.writes),
      };
      writes.push(write);
      own.push(write);
      if (!write.pragma) {
        transactions.push({ version: write.dataVersion, statements: json.params.writes });
      }
    });
    return {
      name,
      raw: fixture.raw,
      ends: messages.map((m) => m.end),
      methods: messages.map((m) => m.json.method),
      ids: messages.map((m) => m.json.id),
      writes: own,
      database: fixture.database,
    };
  });
  return { runs, writes, transactions };
}

/**
 * The first `db_write` a restarted lightningd sends when its database holds `dataVersion`:
 * the first whose version is above it, or the `PRAGMA` hook just before that (a table
 * rebuild's `foreign_keys = OFF` is a setting of the connection, which died: lightningd runs
 * the migration again from its start). `undefined` once every write is committed.
 */
function resumeWrite(all: Runs, dataVersion: number): RecordedWrite | undefined {
  let i = all.writes.findIndex((w) => w.dataVersion > dataVersion);
  if (i === -1) return undefined;
  while (i > 0) {
    const before = all.writes[i - 1];
    if (!before.pragma || before.dataVersion !== dataVersion) break;
    if (before.run !== all.writes[i].run) break;
    i--;
  }
  return all.writes[i];
}

/** How one plugin process of a trial ended: killed, and where its successor resumes. */
export interface Killed {
  resume: RecordedWrite | undefined;
}

/**
 * Replays `bytes` into `node`, one plugin process of a crash trial, and closes it. A process
 * killed with SIGKILL gives the write its restarted successor resumes at; any other must have
 * exited 0 with every change committed (else the trial fails), and gives `undefined`.
 */
export async function replayProcess(
  node: FakeLightningd,
  bytes: Uint8Array,
  all: Runs,
  context: string,
): Promise<Killed | undefined> {
  let outcome: string;
  try {
    outcome = await node.replay(bytes);
  } catch (error) {
    outcome = `threw: ${(error as Error).message}`;
  }
  if (node.db.isTransaction) node.db.exec("ROLLBACK");
  const version = node.dataVersion();
  const status = await node.close();
  assertEquals(node.garbage, [], context);
  if (status.signal === "SIGKILL") return { resume: resumeWrite(all, version) };
  assertEquals(
    [status.code, outcome],
    [0, "committed"],
    `${context}: ${node.aborted} ${JSON.stringify(node.logs)}`,
  );
  return undefined;
}

/** A message of a stream the fake sends: its id, method, and where it ends. */
export interface StreamMessage {
  id: unknown;
  method: string;
  end: number;
}

/** Bytes for the fake to replay, with their messages. */
export interface Stream {
  bytes: Uint8Array;
  messages: StreamMessage[];
}

/**
 * What a (re)started lightningd sends for `run` from its `db_write` `first` on. From the run's
 * first `db_write`: the run as recorded. Else what a restarted lightningd resumes with:
 * `getmanifest`, the recorded messages from `first` on, and `init` right after the first
 * `db_write` when the recorded `init` came before `first` (`db_write` precedes `init`). Every
 * message is a recorded one, byte for byte.
 */
export function resumedStream(run: Run, first: RecordedWrite): Stream {
  const all = run.ends.map((_, i) => i);
  if (first === run.writes[0]) return stream(run, all);
  const getmanifest = run.methods.indexOf("getmanifest");
  const init = run.methods.indexOf("init");
  const after = all.filter((i) => i > first.message);
  return stream(run, [getmanifest, first.message, ...init < first.message ? [init] : [], ...after]);
}

function stream(run: Run, order: number[]): Stream {
  const parts = order.map((i) => run.raw.subarray(i === 0 ? 0 : run.ends[i - 1], run.ends[i]));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  const messages: StreamMessage[] = [];
  let at = 0;
  parts.forEach((part, k) => {
    bytes.set(part, at);
    at += part.length;
    messages.push({ id: run.ids[order[k]], method: run.methods[order[k]], end: at });
  });
  return { bytes, messages };
}

/** Makes `dir` a lightning dir whose `backup.lock` names a new, empty file backup in it. */
export function newLightningDir(dir: string): string {
  const url = `file://${dir}/backup`;
  createFileBackup(`${dir}/backup`);
  writeLockFile(dir, { backend_url: url });
  return url;
}

/**
 * A trial's lightning dir: {@linkcode newLightningDir}'s, or with `key` an encrypted backup
 * and the plugin's key file beside backup.lock.
 */
async function newTrialDir(dir: string, key: DataKey | undefined): Promise<string> {
  if (!key) return newLightningDir(dir);
  await makeEncryptedBackup(`${dir}/backup`, undefined, [], key);
  writeKeyFile(dir, key);
  const url = `file://${dir}/backup`;
  writeLockFile(dir, { backend_url: url });
  return url;
}

/** A reader of the trial's backup, with its key when it is encrypted. */
function readerOf(url: string, key: DataKey | undefined): BackupReader {
  return key ? new FileBackupReader(url, new URL(url).pathname, { key }) : openReader(url);
}

/** Copies a lightning dir made by {@linkcode newLightningDir}, pointing its lock at the copy. */
function copyLightningDir(from: string, to: string): string {
  Deno.mkdirSync(`${to}/backup`, { recursive: true });
  for (const entry of Deno.readDirSync(`${from}/backup`)) {
    Deno.copyFileSync(`${from}/backup/${entry.name}`, `${to}/backup/${entry.name}`);
  }
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isFile && (entry.name.startsWith("lightningd.sqlite3") || entry.name === KEY_FILE)) {
      Deno.copyFileSync(`${from}/${entry.name}`, `${to}/${entry.name}`);
    }
  }
  const url = `file://${to}/backup`;
  writeLockFile(to, { backend_url: url });
  return url;
}

/** Calls `fn` with every message the plugin sends, as the fake receives it. */
function onReceive(node: FakeLightningd, fn: (message: Record<string, unknown>) => void) {
  const received = node.received;
  const push = received.push.bind(received);
  received.push = (...messages: Record<string, unknown>[]) => {
    const length = push(...messages);
    for (const message of messages) fn(message);
    return length;
  };
}

/** SIGKILLs a process that may already be gone. */
export function killNow(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // It exited already.
  }
}

export type Kind = CrashPhase | "sigkill-random" | "sigkill-idle";
export const KINDS: readonly Kind[] = [...CRASH_PHASES, "sigkill-random", "sigkill-idle"];

export interface Crash {
  kind: Kind;
  /** The `db_write` (index into all recorded writes) at or around which to crash. */
  target: number;
  /** After the crash, cut the live segment's unsynced bytes at a random length. */
  powerCut: boolean;
  /** sigkill-random: ms after the answer before the target; sigkill-idle: ms after the target. */
  delayMs: number;
  /** sigkill-idle: notifications sent after the target before the kill. */
  extra: number;
}

/** The crashes of one trial, from its seed alone. */
export function plan(seed: number, all: Runs): Crash[] {
  const random = prng(seed);
  const below = (n: number) => Math.floor(random() * n);
  const firstActivity = all.runs[2].writes[0].index;
  const crash = (kind: Kind, from: number, to: number): Crash => ({
    kind,
    target: from + below(to - from),
    powerCut: (kind === "mid-write" || kind === "after-write-before-sync") && random() < 0.5,
    delayMs: below(7),
    extra: below(3),
  });
  // A quarter of the trials crash in fresh-start or restart (17 of 481 writes, where the
  // schema, the migrations and their PRAGMA hooks are), the rest in activity.
  const first = random() < 0.25
    ? crash(KINDS[seed % KINDS.length], 0, firstActivity)
    : crash(KINDS[seed % KINDS.length], firstActivity, all.writes.length);
  if (random() >= 0.3) return [first];
  // A second crash at or after the first: often in the restarted process, right after its
  // rewind or torn-tail repair.
  const to = random() < 0.5 ? Math.min(first.target + 3, all.writes.length) : all.writes.length;
  return [first, crash(KINDS[below(KINDS.length)], first.target, to)];
}

/**
 * Where a trial's lightning dir goes. The kills are process crashes: the page cache survives
 * them whether or not a write was synced, so a tmpfs changes nothing they test and saves the
 * fsyncs' time; power cuts are simulated by cutting unsynced bytes. Every fourth trial still
 * runs in the default temporary directory, on a real file system.
 */
function trialParent(seed: number): string | undefined {
  const chosen = Deno.env.get("CRASH_TMPDIR");
  if (chosen !== undefined) return chosen;
  if (seed % 4 === 0) return undefined;
  try {
    return Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}

/** What the next plugin start must log, from the state a crash left. */
interface Expectation {
  tornBytes: number;
  backupVersion: number;
  nodeVersion: number;
}

export interface TrialReport {
  seed: number;
  line: string;
  crashes: Kind[];
  missed: Kind[];
  rewinds: number;
  tornCuts: number;
  checked: number;
  processes: number;
}

/** The page a file system writes back whole. */
const PAGE_BYTES = 4096;

/**
 * Loses what a crash left unsynced in the live segment (a power cut): from a random length
 * on, or a record's first page with its later pages kept.
 */
function powerCut(backupDir: string, phase: CrashPhase, random: () => number): string {
  const live = readLayout(backupDir).logs.at(-1)!.path;
  const file = Deno.openSync(live, { read: true, write: true });
  try {
    const size = file.statSync().size;
    const sealed = readChain(backupDir).keyId !== undefined;
    const scan = scanSegment(file, live, { decode: false, sealed });
    let lastOffset = -1;
    let step = scan.next();
    for (; !step.done; step = scan.next()) lastOffset = step.value.offset;
    // mid-write: the torn half; after-write-before-sync: the whole last record.
    const from = phase === "mid-write" ? step.value.end : lastOffset;
    assert(from >= 0 && from <= size, `no unsynced record in ${live}`);
    // Written into zeros, a record's pages reach the disk in any order: the first can be lost
    // with the header, and later ones kept.
    const page = (Math.floor(from / PAGE_BYTES) + 1) * PAGE_BYTES;
    if (page < dataEnd(file, from, size, live) && random() < 0.25) {
      file.seekSync(from, Deno.SeekMode.Start);
      writeAll(file, new Uint8Array(page - from));
      return `power cut: ${from}..${page} lost, ${page}..${size} kept`;
    }
    const cut = from + Math.floor(random() * (size - from + 1));
    // The lost bytes are gone with the file's growth, or were written into zeros the writer
    // had synced ahead of them, which they stay.
    if (random() < 0.5) {
      file.truncateSync(cut);
      return `power cut at ${cut} of ${from}..${size}`;
    }
    file.seekSync(cut, Deno.SeekMode.Start);
    writeAll(file, new Uint8Array(size - cut));
    return `power cut at ${cut} of ${from}..${size}, zeros after it`;
  } finally {
    file.close();
  }
}

function checkRestartLogs(
  logs: { level: string; message: string }[],
  expect: Expectation,
  context: string,
): { rewind: boolean; torn: boolean } | undefined {
  const check = logs.find((l) =>
    /^(backup in step with the node|dropping change|Cannot continue)/.test(l.message)
  );
  if (!check) return undefined; // killed again before its first db_write
  const cut = logs.filter((l) => l.message.startsWith("cut "));
  if (expect.tornBytes > 0) {
    assertEquals(
      cut.length,
      1,
      `${context}: expected one torn-tail cut, logs: ${JSON.stringify(logs)}`,
    );
    assertMatch(cut[0].message, new RegExp(`^cut ${expect.tornBytes} torn bytes at offset `));
  } else {
    assertEquals(cut, [], context);
  }
  if (expect.backupVersion === expect.nodeVersion + 1) {
    assertMatch(check.message, new RegExp(`^dropping change ${expect.backupVersion} `), context);
    return { rewind: true, torn: expect.tornBytes > 0 };
  }
  assertEquals(expect.backupVersion, expect.nodeVersion, `${context}: backup vs node`);
  assertMatch(
    check.message,
    new RegExp(`^backup in step with the node at version ${expect.nodeVersion}$`),
    context,
  );
  return { rewind: false, torn: expect.tornBytes > 0 };
}

/** How long one plugin process may take (a whole run takes well under 10 s). */
const HANG_MS = 120_000;

/** What every trial shares: the recorded runs, a lightning dir after the first two, the end. */
export interface TrialSetup {
  /** The data key of the trials' encrypted backups; plain backups without it. */
  key?: DataKey;
  all: Runs;
  template: string;
  expectedDump: string;
}

/** Runs one trial; throws when the plugin lost or invented a change, or misbehaved. */
export async function runTrial(
  seed: number,
  { all, template, expectedDump, key }: TrialSetup,
): Promise<TrialReport> {
  const started = performance.now();
  const crashes = plan(seed, all);
  const random = prng(seed ^ 0x9e3779b9);
  const report: TrialReport = {
    seed,
    line: "",
    crashes: [],
    missed: [],
    rewinds: 0,
    tornCuts: 0,
    checked: 0,
    processes: 0,
  };
  const notes: string[] = [];
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-crash-", dir: trialParent(seed) });
  try {
    const fromTemplate = crashes[0].target >= all.runs[2].writes[0].index;
    const url = fromTemplate ? copyLightningDir(template, dir) : await newTrialDir(dir, key);
    let next: RecordedWrite | undefined = fromTemplate ? all.runs[2].writes[0] : all.writes[0];
    let expect: Expectation | undefined;
    const pending = [...crashes];
    for (; next !== undefined; report.processes++) {
      const run = all.runs[next.run];
      const { bytes: stream, messages } = resumedStream(run, next);
      const lastWrite = run.writes.at(-1)!.index;
      const crash = pending[0] !== undefined && pending[0].target <= lastWrite
        ? pending.shift()
        : undefined;
      // A second crash planned at a write the first one's resume already passed.
      if (crash && crash.target < next.index) crash.target = next.index;
      const target = crash && all.writes[crash.target];
      const context = `seed ${seed}, run ${run.name}, process ${report.processes}`;
      const env: Record<string, string> = {};
      if (crash && target && (CRASH_PHASES as readonly string[]).includes(crash.kind)) {
        const writes = messages.filter((m) => m.method === "db_write");
        const n = writes.findIndex((m) => m.id === target.id) + 1;
        assert(n > 0, `${context}: target ${target.id} not in the stream`);
        env[CRASH_ENV] = `${crash.kind}:${n}`;
      }
      const node = FakeLightningd.spawn({
        lightningDir: dir,
        env,
        chunking: { kind: "random", seed: seed * 31 + report.processes, max: 65536 },
      });
      // The test process never crashes: the fake's own commits need no fsync nor journal file.
      node.volatileCommits();
      let timer: ReturnType<typeof setTimeout> | undefined;
      let armed = true;
      // A plugin that stops answering would hang the fake: kill it and fail instead.
      let hung = false;
      const watchdog = setTimeout(() => {
        hung = true;
        killNow(node.pid);
      }, HANG_MS);
      if (crash?.kind === "sigkill-random") {
        const at = messages.findIndex((m) => m.id === target!.id);
        const anchor = messages.slice(0, at).findLast((m) =>
          ["db_write", "getmanifest", "init"].includes(m.method)
        )!;
        onReceive(node, (message) => {
          if (message.method !== undefined || message.id !== anchor.id || !armed) return;
          timer = setTimeout(() => armed && killNow(node.pid), crash.delayMs);
        });
      }
      let outcome: string;
      try {
        if (crash?.kind === "sigkill-idle") {
          let at = messages.findIndex((m) => m.id === target!.id);
          for (let extra = crash.extra; extra > 0 && at + 1 < messages.length; extra--) {
            if (messages[at + 1].id !== undefined) break;
            at++;
          }
          outcome = await node.replay(stream.subarray(0, messages[at].end));
          await new Promise((resolve) => setTimeout(resolve, crash.delayMs));
          killNow(node.pid);
        } else {
          outcome = await node.replay(stream);
        }
      } catch (error) {
        outcome = `threw: ${(error as Error).message}`;
      }
      armed = false;
      clearTimeout(timer);
      clearTimeout(watchdog);
      // lightningd dies with the plugin (important-plugin): what it did not commit is lost.
      if (node.db.isTransaction) node.db.exec("ROLLBACK");
      const nodeVersion = node.dataVersion();
      const status = await node.close();
      assert(!hung, `${context}: no answer in ${HANG_MS} ms: ${await node.stderr()}`);
      assertEquals(node.garbage, [], context);
      assertEquals(node.logs.filter((l) => l.level === "broken"), [], context);
      assert(!node.aborted?.startsWith("Plugin returned"), `${context}: ${node.aborted}`);
      if (expect) {
        const seen = checkRestartLogs(node.logs, expect, context);
        if (seen) {
          report.checked++;
          if (seen.rewind) report.rewinds++;
          if (seen.torn) report.tornCuts++;
          expect = undefined;
        }
      }
      if (status.signal !== "SIGKILL") {
        assertEquals(status.code, 0, `${context}: ${outcome}: ${await node.stderr()}`);
        assertEquals(outcome, "committed", context);
        if (crash) report.missed.push(crash.kind);
        next = all.runs[next.run + 1]?.writes[0];
        continue;
      }
      assert(crash, `${context}: the plugin died unasked: ${await node.stderr()}`);
      report.crashes.push(crash.kind);
      const hook = target!.id.replace("cln:db_write#", "#");
      let note = `${crash.kind}@${run.name}${hook}/v${target!.dataVersion}`;
      const phase = CRASH_PHASES.find((p) => p === crash.kind);
      if (phase && crash.powerCut) note += ` (${powerCut(`${dir}/backup`, phase, random)})`;
      notes.push(note);
      const reader = readerOf(url, key);
      const described = reader.describe();
      reader.close();
      expect = {
        tornBytes: described.tornBytes,
        backupVersion: described.lastVersion,
        nodeVersion,
      };
      if (phase && !crash.powerCut) {
        // The seam did what it names.
        const ahead = target!.pragma ? 0 : 1;
        assertEquals(nodeVersion, target!.dataVersion - ahead, `${context}: node version`);
        const stored = phase === "after-write-before-sync" || phase === "after-sync-before-answer";
        assertEquals(expect.tornBytes > 0, phase === "mid-write", `${context}: torn tail`);
        assertEquals(expect.backupVersion, nodeVersion + (stored ? ahead : 0), context);
      }
      next = resumeWrite(all, nodeVersion);
      if (next === undefined) {
        // Everything was committed: lightningd starts once more and stops, with no write.
        const last = FakeLightningd.spawn({ lightningDir: dir });
        await last.getmanifest();
        await last.init();
        assertEquals((await last.stop()).code, 0, context);
        assertEquals(last.logs.filter((l) => l.level === "broken"), [], context);
        report.processes++;
      }
    }
    assertEquals(pending, [], `seed ${seed}: crashes planned after the end`);
    assertEquals(dumpDatabase(`${dir}/lightningd.sqlite3`), expectedDump, `seed ${seed}: node`);
    const reader = readerOf(url, key);
    const described = reader.describe();
    assertEquals(described.tornBytes, 0, `seed ${seed}`);
    assertEquals(described.lastVersion, all.writes.at(-1)!.dataVersion, `seed ${seed}`);
    const stored = storedTransactions(reader, `seed ${seed}`);
    assert(stored.length === all.transactions.length, `seed ${seed}: ${stored.length} stored`);
    assertEquals(stored, all.transactions, `seed ${seed}: stored transactions`);
    restoreBackup(reader, `${dir}/restored.sqlite3`);
    reader.close();
    assertEquals(dumpDatabase(`${dir}/restored.sqlite3`), expectedDump, `seed ${seed}: restore`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  const ms = Math.round(performance.now() - started);
  report.line = `seed ${seed}: ${notes.join(", ") || "no crash landed"}` +
    (report.missed.length ? `, missed ${report.missed.join("+")}` : "") +
    ` -> ${report.processes} plugin runs, ${report.rewinds} rewind, ${report.tornCuts} cut; ${ms} ms`;
  return report;
}

/**
 * The transactions a backup holds, checking on the way that versions go up by one, and that
 * only PRAGMA hooks (which repeat their version, and are sent again when a migration reruns)
 * repeat one: so every transaction is there once, in order. After a base, the transactions
 * after its version (the base holds the others).
 */
export function storedTransactions(reader: BackupReader, context: string): Runs["transactions"] {
  const stored: Runs["transactions"] = [];
  let version = 0;
  for (const entry of reader.entries()) {
    // A compaction's base holds every transaction up to its version: the changes follow it.
    if (entry.kind === "snapshot-end") version = entry.version;
    if (entry.kind !== "change") continue;
    const pragma = isPragmaOnly(entry.statements);
    assertEquals(entry.version, pragma ? version : version + 1, `${context}: versions`);
    version = entry.version;
    if (!pragma) stored.push({ version, statements: entry.statements });
  }
  return stored;
}

/** Runs fresh-start and restart cleanly: the common start of the trials that crash later. */
export async function buildTemplate(dir: string, all: Runs, key?: DataKey): Promise<void> {
  await newTrialDir(dir, key);
  for (const run of all.runs.slice(0, 2)) {
    const node = FakeLightningd.spawn({ lightningDir: dir });
    assertEquals(await node.replay(run.raw), "committed");
    assertEquals((await node.close()).code, 0);
  }
  assertEquals(dumpDatabase(`${dir}/lightningd.sqlite3`), dumpDatabase(all.runs[1].database));
}

/** A request to a crash worker: the shared setup once, then one seed per trial. */
export type WorkerRequest = { template: string; key?: Uint8Array } | { seed: number };
/** A crash worker's answer to a seed; `ignored` counts the fake's unobserved rejections so far. */
export type WorkerReply =
  & { seed: number; ignored: number }
  & ({ report: TrialReport } | { error: string });

/** Runs trials as a worker: trials run concurrently, as many as the test sends. */
function serveTrials(): void {
  const scope = globalThis as unknown as {
    onmessage: (event: MessageEvent<WorkerRequest>) => void;
    postMessage(reply: WorkerReply): void;
  };
  // The fake leaves the answer promise of a request unobserved when its write fails because the
  // plugin is already dead (the request itself fails, and that is handled): ignore those only.
  let ignored = 0;
  globalThis.addEventListener("unhandledrejection", (event) => {
    if ((event.reason as Error)?.message === "plugin exited without answering") {
      event.preventDefault();
      ignored++;
    }
  });
  let setup: Promise<TrialSetup> | undefined;
  scope.onmessage = async ({ data }) => {
    if ("template" in data) {
      const all = loadRuns();
      const { template, key } = data;
      // Trials sent meanwhile wait for it (making a key loads the crypto library).
      setup = (async () => ({
        all,
        template,
        expectedDump: dumpDatabase(all.runs[2].database),
        key: key && await DataKey.from(key),
      }))();
      return;
    }
    try {
      const report = await runTrial(data.seed, await setup!);
      scope.postMessage({ seed: data.seed, ignored, report });
    } catch (error) {
      const text = error instanceof Error ? error.stack ?? error.message : String(error);
      scope.postMessage({ seed: data.seed, ignored, error: text });
    }
  };
}

if (import.meta.main) serveTrials();
