/**
 * init and upgrade racing, as real `deno run cli.ts` processes stopped at the same step
 * (lib/fs/step_seam.ts): after their checks, so that both have found the way clear before either
 * writes, or with their backups built, so that both rename into place: one wins, the other says
 * what happened in one line and leaves nothing of its own behind.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { PRE_4090_BACKUP } from "./support/fixtures.ts";
import { CliProcess, type CliRun } from "./support/cli_process.ts";
import type { SeamStep } from "../lib/fs/step_seam.ts";
import { makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { existsSync } from "../lib/fs/exists.ts";

/**
 * Starts each command stopped at `step` (one at a time, so a command that cannot get there
 * ends first), then resumes those that stopped; returns their results in order.
 */
async function race(commands: string[][], step: SeamStep): Promise<CliRun[]> {
  const processes: CliProcess[] = [];
  const stopped: CliProcess[] = [];
  for (const args of commands) {
    const process = new CliProcess(args, { action: "pause", step });
    if (await process.paused() === "paused") stopped.push(process);
    processes.push(process);
  }
  for (const process of stopped) process.resume();
  return await Promise.all(processes.map((p) => p.result()));
}

/** The one winner and the one loser of a race. */
function outcome(runs: CliRun[]): { winner: number; loser: CliRun } {
  const winners = runs.flatMap((run, i) => run.code === 0 ? [i] : []);
  assertEquals(winners.length, 1, JSON.stringify(runs, null, 1));
  const loser = runs[1 - winners[0]];
  assertEquals(loser.code, 1, loser.stderr.join("\n"));
  assertEquals(loser.stderr.length, 1, loser.stderr.join("\n"));
  return { winner: winners[0], loser };
}

function lockUrl(dir: string): string {
  return JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)).backend_url;
}

Deno.test("two inits on one lightning dir: one sets it up, the other is refused", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  const urls = [`file://${base}/a`, `file://${base}/b`];
  const runs = await race(urls.map((url) => ["init", url, "--lightning-dir", dir]), "init-checked");
  const { winner, loser } = outcome(runs);
  assertMatch(
    loser.stderr[0],
    /^Cannot init backup: another init or upgrade is running on ".*regtest" \(it holds the directory's lock\): wait for it to finish, then run this again$/,
  );
  assertEquals(lockUrl(dir), urls[winner]);
  assert(!existsSync(`${base}/${"ab"[1 - winner]}`), "the loser made no backup");
  assertMatch(
    Deno.readTextFileSync(`${dir}/cln-backup-plugin`),
    new RegExp(`'--allow-write=${base}/${"ab"[winner]}'`),
  );
  removeNodeDir(dir);
});

Deno.test("two inits of two nodes to one backup path: the second is told it appeared", async () => {
  const dirs = [makeNodeDir("fresh-start"), makeNodeDir("fresh-start")];
  const shared = Deno.makeTempDirSync();
  const url = `file://${shared}/backup`;
  const runs = await race(
    dirs.map((dir) => ["init", url, "--lightning-dir", dir]),
    "create-building",
  );
  const { winner, loser } = outcome(runs);
  assertMatch(
    loser.stderr[0],
    /^Cannot create backup: ".*\/backup" appeared while this one was being built \(another init or upgrade made it\): nothing was changed; check what is there/,
  );
  assertEquals(lockUrl(dirs[winner]), url);
  const loserDir = dirs[1 - winner];
  assertEquals([...Deno.readDirSync(loserDir)].map((e) => e.name).sort(), [
    "hsm_secret",
    "lightningd.sqlite3",
  ]);
  assertEquals([...Deno.readDirSync(shared)].map((e) => e.name), ["backup"]);
  for (const dir of dirs) removeNodeDir(dir);
  Deno.removeSync(shared, { recursive: true });
});

Deno.test("two upgrades to one new path: the second is told it appeared, backup.lock kept", async () => {
  const dirs = [makeNodeDir(), makeNodeDir()];
  const shared = Deno.makeTempDirSync();
  const url = `file://${shared}/converted`;
  const locks = dirs.map((dir) => {
    Deno.copyFileSync(PRE_4090_BACKUP, `${dir}/../backup.dbak`);
    const lock = JSON.stringify({ backend_url: `file://${Deno.realPathSync(dir)}/../backup.dbak` });
    Deno.writeTextFileSync(`${dir}/backup.lock`, lock);
    return lock;
  });
  const runs = await race(
    dirs.map((dir) => ["upgrade", "--lightning-dir", dir, "--to", url]),
    "upgrade-building",
  );
  const { winner, loser } = outcome(runs);
  assertMatch(
    loser.stderr[0],
    /^Cannot create backup: ".*\/converted" appeared while this one was being built/,
  );
  assertEquals(lockUrl(dirs[winner]), url);
  assertEquals(Deno.readTextFileSync(`${dirs[1 - winner]}/backup.lock`), locks[1 - winner]);
  assertEquals([...Deno.readDirSync(shared)].map((e) => e.name), ["converted"]);
  for (const dir of dirs) removeNodeDir(dir);
  Deno.removeSync(shared, { recursive: true });
});

Deno.test("a backup.lock written meanwhile by another hand is never replaced by init", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  const init = new CliProcess(
    ["init", `file://${base}/backup`, "--lightning-dir", dir],
    { action: "pause", step: "init-checked" },
  );
  assertEquals(await init.paused(), "paused");
  const theirs = '{"backend_url": "file:///elsewhere"}\n';
  Deno.writeTextFileSync(`${dir}/backup.lock`, theirs);
  init.resume();
  const run = await init.result();
  assertEquals(run.code, 1);
  assertEquals(run.stderr, [
    `Cannot init backup: "${dir}/backup.lock" appeared while the backup was being made (it ` +
    `points to file:///elsewhere), written by another process: the new backup was removed and ` +
    `nothing changed; check which backup this node should use, then run this again if needed`,
  ]);
  assertEquals(Deno.readTextFileSync(`${dir}/backup.lock`), theirs);
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name), ["regtest"]);
  assert(!existsSync(`${dir}/cln-backup-plugin`));
  removeNodeDir(dir);
});
