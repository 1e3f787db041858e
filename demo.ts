/**
 * `deno task demo [-- --keep]`: the whole job, end to end, in a temporary directory.
 *
 * 1. Creates a node directory and inits a file backup of it with the `init` command, which
 *    writes `backup.lock` and the least-privilege launcher, and shows what init warns of (the
 *    demo's backup is on the node's own disk).
 * 2. Runs the fake lightningd (tests/support/fake_lightningd.ts) over the recorded runs of a
 *    real CLN v26.06.6 node (fresh start, restart, activity), starting the real plugin exactly
 *    as lightningd would: by running the launcher.
 * 3. Half-way through the activity, kills node and plugin with SIGKILL while a transaction
 *    is in flight: the plugin has stored it, the node has not committed it (rolled back).
 * 4. Restarts: a new plugin process, the node going on from the first `db_write` above the
 *    version its database holds; the plugin drops the change the node never committed.
 * 5. Restores the backup into a new file and proves it equals the node's database: the same
 *    rows in every table, the same `data_version`, and SQLite's integrity check.
 *
 * Exit status 0 only if the proof holds. The temporary directory is removed unless `--keep`.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import {
  FakeLightningd,
  type RecordedMessage,
  splitMessages,
} from "./tests/support/fake_lightningd.ts";
import {
  type Fixture,
  FIXTURES,
  loadFixture,
  type Scenario,
  SCENARIOS,
} from "./tests/support/fixtures.ts";
import { dumpDatabase } from "./tests/support/dump.ts";
import { isPragmaOnly } from "./lib/sqlite/apply.ts";
import { openReader } from "./lib/backends/open.ts";
import { DATABASE_NAME } from "./lib/backup/database_name.ts";
import { restoreBackup } from "./lib/backup/restore.ts";
import { init } from "./lib/cli/init.ts";
import { LAUNCHER_NAME, parseLauncher } from "./lib/cli/launcher.ts";

const HELP = `Usage: deno task demo [-- --keep]

Backs up a node's database change by change through the real plugin, kills the node and the
plugin mid-way (SIGKILL), restarts, restores the backup and proves the restore equals the
node's database. Exit status 0 only if the proof holds.

  --keep   keep the temporary directory (the node, the backup, the restored database)`;

/** A failed step: the demo prints it and exits 1. */
class DemoFailure extends Error {}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new DemoFailure(message);
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const millis = (ms: number): string => `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`;

function quantile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

interface Drive {
  /** Round trips of the `db_write`s the plugin answered, in milliseconds. */
  hooks: number[];
  /** The version of the transaction in flight when the node was killed. */
  killedAt?: number;
}

/**
 * Sends a recorded run's messages from index `from` on, as lightningd sent them: each
 * `db_write` runs its transaction on the node's database, waits for the plugin, and commits
 * on `continue`. With `killAt`, the transaction of that version gets its answer, then node
 * and plugin are killed before the commit, so it is rolled back.
 */
async function drive(
  node: FakeLightningd,
  raw: Uint8Array,
  messages: RecordedMessage[],
  options: { from?: number; killAt?: number; initAfterFirstWrite?: boolean } = {},
): Promise<Drive> {
  const result: Drive = { hooks: [] };
  const from = options.from ?? 0;
  let start = from === 0 ? 0 : messages[from - 1].end;
  let pendingInit = options.initAfterFirstWrite ?? false;
  for (const message of messages.slice(from)) {
    const { id, method, params } = message.json;
    const bytes = raw.subarray(start, message.end);
    start = message.end;
    if (id === undefined || !["db_write", "getmanifest", "init"].includes(method)) {
      await node.write(bytes); // A notification: lightningd does not wait.
      continue;
    }
    if (method !== "db_write") {
      await node.request(method, params, id);
      continue;
    }
    const outside = isPragmaOnly(params.writes);
    if (!outside) node.db.exec("BEGIN");
    for (const statement of params.writes) node.db.exec(statement);
    const sent = performance.now();
    const answer = await node.request("db_write", params, id);
    result.hooks.push(performance.now() - sent);
    const verdict = (answer.result as { result?: string } | undefined)?.result;
    if (verdict !== "continue") {
      if (!outside) node.db.exec("ROLLBACK");
      throw new DemoFailure(
        `the plugin refused change ${params.data_version}: ${JSON.stringify(answer)}; ` +
          `its log: ${JSON.stringify(node.logs.slice(-3))}`,
      );
    }
    if (params.data_version === options.killAt && !outside) {
      node.db.exec("ROLLBACK"); // What SQLite does to a transaction when its process dies.
      await node.kill();
      result.killedAt = params.data_version;
      return result;
    }
    if (!outside) node.db.exec("COMMIT");
    if (pendingInit) {
      pendingInit = false;
      await node.init();
    }
  }
  return result;
}

function dataVersion(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return Number(db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get()?.intval);
  } finally {
    db.close();
  }
}

function integrity(path: string): string {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare("PRAGMA integrity_check").all().map((r) => r.integrity_check).join("; ");
  } finally {
    db.close();
  }
}

async function finish(node: FakeLightningd, what: string): Promise<void> {
  const status = await node.close();
  const stderr = await node.stderr();
  check(status.code === 0, `the plugin exited with ${status.code} after ${what}: ${stderr}`);
  check(node.garbage.length === 0, `the plugin wrote non-JSON-RPC output: ${node.garbage[0]}`);
  const broken = node.logs.filter((l) => l.level === "broken");
  check(broken.length === 0, `the plugin logged: ${broken[0]?.message}`);
}

async function demo(root: string, print: (line: string) => void): Promise<void> {
  const lightningDir = `${root}/lightning/regtest`;
  const backupDir = `${root}/backup`;
  const url = `file://${backupDir}`;
  const database = `${lightningDir}/${DATABASE_NAME}`;
  Deno.mkdirSync(lightningDir, { recursive: true });
  const fixtures = Object.fromEntries(
    SCENARIOS.map((name) => [name, loadFixture(name)]),
  ) as Record<Scenario, Fixture>;
  print(`cln-backup demo in ${root}`);

  // 1. init, as an operator would, with the CLI command.
  const said: string[] = [];
  const warned: string[] = [];
  const code = await init([url, "--lightning-dir", lightningDir], {
    out: (line) => said.push(line),
    err: (line) => warned.push(line),
  });
  check(code === 0, `init failed: ${[...said, ...warned].join(" / ")}`);
  const launcher = `${lightningDir}/${LAUNCHER_NAME}`;
  const launch = parseLauncher(Deno.readTextFileSync(launcher));
  check(launch, `init wrote no launcher at ${launcher}`);
  const flags = launch.args.filter((a) => a.startsWith("--allow") || a === "--no-prompt");
  print(`✓ init: empty backup at version 0; lightningd runs regtest/${LAUNCHER_NAME}:`);
  const checkout = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
  print(
    `    deno run ${
      flags.join(" ").replaceAll(root, "…").replaceAll(checkout, "<checkout>")
    } plugin.ts`,
  );
  if (warned.length > 0) {
    // Shown as init says it: the demo's backup is on the node's disk, which no real one should be.
    print(
      `! init warns (true of this demo, which keeps node and backup in one temporary ` +
        `directory; on a real node, do as it says):`,
    );
    for (const line of warned) print(`    ${line}`);
  }

  // 2. The recorded runs, through the plugin as lightningd starts it.
  const start = (): FakeLightningd =>
    FakeLightningd.spawn({ lightningDir, command: [launcher], env: { PATH: "/nonexistent" } });
  const hooks: number[] = [];
  let hookCount = 0;
  const began = performance.now();
  for (const name of ["fresh-start", "restart"] as const) {
    const t0 = performance.now();
    const node = start();
    const { raw } = fixtures[name];
    const run = await drive(node, raw, splitMessages(raw));
    await finish(node, name);
    hooks.push(...run.hooks);
    hookCount += run.hooks.length;
    print(
      `✓ ${name}: ${run.hooks.length} db_write hooks answered, node at version ` +
        `${dataVersion(database)}, ${seconds(performance.now() - t0)}`,
    );
  }

  // 3. Activity, killed half-way.
  const { raw } = fixtures.activity;
  const messages = splitMessages(raw);
  const writes = messages.filter((m) => m.json.method === "db_write");
  const killAt: number = writes[Math.floor(writes.length / 2)].json.params.data_version;
  let t0 = performance.now();
  let node = start();
  const firstHalf = await drive(node, raw, messages, { killAt });
  hooks.push(...firstHalf.hooks);
  hookCount += firstHalf.hooks.length;
  check(firstHalf.killedAt === killAt, `the activity ended before change ${killAt}`);
  const held = dataVersion(database);
  check(held === killAt - 1, `the node's database is at ${held} after the kill, not ${killAt - 1}`);
  const backupAt = openReader(url).describe().lastVersion;
  check(backupAt === killAt, `the backup is at ${backupAt} after the kill, not ${killAt}`);
  print(
    `⚡ kill -9 node and plugin mid-activity, ${seconds(performance.now() - t0)} in: the ` +
      `backup holds change ${killAt}, the node rolled it back (database at ${held})`,
  );

  // 4. Restart: a new plugin process; lightningd goes on above its database's version.
  t0 = performance.now();
  node = start();
  await node.getmanifest();
  const from = messages.findIndex((m) =>
    m.json.method === "db_write" && m.json.params.data_version > held
  );
  const secondHalf = await drive(node, raw, messages, { from, initAfterFirstWrite: true });
  await finish(node, "the restart");
  hooks.push(...secondHalf.hooks);
  hookCount += secondHalf.hooks.length;
  const rewind = node.logs.find((l) => l.message.startsWith(`dropping change ${killAt}`));
  check(rewind, `the plugin did not drop change ${killAt}: ${JSON.stringify(node.logs)}`);
  const version = dataVersion(database);
  print(
    `✓ restart: plugin dropped the uncommitted change ${killAt} (rewind); activity finished, ` +
      `node at version ${version}, ${seconds(performance.now() - t0)}`,
  );
  print(
    `✓ ${version} changes backed up (${hookCount} hooks), ${seconds(performance.now() - began)}; ` +
      `hook round trip p50 ${millis(quantile(hooks, 0.5))}, p99 ${millis(quantile(hooks, 0.99))}`,
  );

  // 5. Restore and prove.
  t0 = performance.now();
  const restoredPath = `${root}/restored.sqlite3`;
  const restored = restoreBackup(openReader(url), restoredPath);
  print(
    `✓ restored version ${restored.version} (${restored.changes} changes) into a new file, ` +
      `${seconds(performance.now() - t0)}`,
  );
  const nodeDump = dumpDatabase(database);
  const restoredDump = dumpDatabase(restoredPath);
  check(restoredDump === nodeDump, "the restored database differs from the node's");
  check(
    nodeDump === dumpDatabase(fixtures.activity.database),
    "the node's database differs from the one the real lightningd ended with",
  );
  const restoredVersion = dataVersion(restoredPath);
  check(restoredVersion === version, `restored data_version ${restoredVersion} is not ${version}`);
  const integrityCheck = integrity(restoredPath);
  check(
    integrityCheck === "ok",
    `the restored database fails its integrity check: ${integrityCheck}`,
  );
  const rows = nodeDump.split("\n").filter((l) => l.startsWith("INSERT INTO")).length;
  const tables = nodeDump.split("\n").filter((l) => l.startsWith("CREATE TABLE")).length;
  print(
    `✓ proof: the restored database equals the node's, row for row (${tables} tables, ` +
      `${rows} rows), data_version ${restoredVersion} on both, integrity_check ok`,
  );
}

async function main(args: string[]): Promise<number> {
  const unknown = args.filter((a) => a !== "--keep" && a !== "--");
  if (unknown.length > 0 || args.includes("--help") || args.includes("-h")) {
    const help = args.includes("--help") || args.includes("-h");
    (help ? console.log : console.error)(help ? HELP : `Unknown option "${unknown[0]}"\n${HELP}`);
    return help ? 0 : 2;
  }
  try {
    Deno.statSync(`${FIXTURES}cln-v26.06.6/activity/stdin.raw`);
  } catch {
    console.error(
      `✗ the recorded lightningd runs are missing (looked in ${FIXTURES}): the demo replays ` +
        `them; run it from a complete checkout`,
    );
    return 1;
  }
  const root = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "cln-backup-demo-" }));
  const keep = args.includes("--keep");
  try {
    await demo(root, (line) => console.log(line));
    return 0;
  } catch (error) {
    const message = error instanceof DemoFailure ? error.message : (error as Error).stack;
    console.error(`✗ FAILED: ${message}`);
    return 1;
  } finally {
    if (keep) console.log(`kept ${root}`);
    else Deno.removeSync(root, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
