/**
 * A plugin session for the protocol tests: a lightning dir with a backup and backup.lock,
 * the plugin (or the test plugin) started by the fake lightningd and `getmanifest` answered,
 * and the helpers the tests share.
 *
 * @module
 */
import { assertEquals } from "./assert.ts";
import { DATABASE_NAME, FakeLightningd, type FakeLightningdOptions } from "./fake_lightningd.ts";
import { dumpDatabase } from "./dump.ts";
import { loadFixture, SCENARIOS } from "./fixtures.ts";
import { createFileBackup } from "../../lib/backends/file/create.ts";
import { writeLockFile } from "../../lib/backup/lock_file.ts";
import { openReader } from "../../lib/backends/open.ts";
import { restoreBackup } from "../../lib/backup/restore.ts";

export { DATABASE_NAME };

export const SCHEMA = [
  "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name))",
  "INSERT INTO vars (name, intval) VALUES ('data_version', 0)",
  "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)",
  "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)",
];
export const note = (text: string) => `INSERT INTO notes (note) VALUES ('${text}')`;

/** Fails when `promise` takes longer than `ms`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Session {
  dir: string;
  url: string;
  lightningd: FakeLightningd;
  /** Starts another plugin process on the same lightning dir. */
  restart(): Promise<FakeLightningd>;
}

/**
 * A lightning dir with a backup and backup.lock (unless `prepare` sets up something else),
 * the plugin started and `getmanifest` answered; every plugin is gone and the dir removed
 * afterwards, whatever happens.
 */
export async function withPlugin(
  fn: (session: Session) => Promise<void>,
  prepare?: (dir: string) => void,
  spawnOptions: Omit<FakeLightningdOptions, "lightningDir"> = {},
): Promise<void> {
  const dir = Deno.makeTempDirSync();
  const spawned: FakeLightningd[] = [];
  const spawn = async () => {
    const lightningd = FakeLightningd.spawn({ lightningDir: dir, ...spawnOptions });
    spawned.push(lightningd);
    await within(10_000, "getmanifest", lightningd.getmanifest());
    return lightningd;
  };
  try {
    const url = `file://${dir}/backup`;
    if (prepare) {
      prepare(dir);
    } else {
      createFileBackup(`${dir}/backup`);
      writeLockFile(dir, { backend_url: url });
    }
    await fn({ dir, url, lightningd: await spawn(), restart: spawn });
  } finally {
    // Killing a plugin that already exited is harmless; one that hangs must not outlive us.
    for (const lightningd of spawned) await lightningd.kill().catch(() => {});
    Deno.removeSync(dir, { recursive: true });
  }
}

export function status(answer: Record<string, unknown>): Record<string, unknown> {
  return answer.result as Record<string, unknown>;
}

/** A db_write after the input under test is answered `continue` and stored. */
export async function assertStillServes(
  lightningd: FakeLightningd,
  text = "still here",
): Promise<void> {
  const outcome = await within(10_000, "db_write", lightningd.transaction([note(text)]));
  assertEquals(outcome, "committed");
  const answer = await within(10_000, "backup-status", lightningd.request("backup-status", {}));
  assertEquals(status(answer).ok, true);
  assertEquals(status(answer).version, lightningd.dataVersion());
}

/**
 * Stops the node as lightningd does (`shutdown` once past `init`, else end of input); the
 * plugin must exit 0 having written only JSON-RPC.
 */
export async function stop(lightningd: FakeLightningd): Promise<void> {
  const exit = await within(10_000, "exit after shutdown", lightningd.stop());
  assertEquals(exit.code, 0);
  assertEquals(lightningd.garbage, []);
}

export function restoredDump(dir: string, url: string): string {
  const reader = openReader(url);
  try {
    restoreBackup(reader, `${dir}/restored.sqlite3`);
  } finally {
    reader.close();
  }
  return dumpDatabase(`${dir}/restored.sqlite3`);
}

export const unusual = (lightningd: FakeLightningd) =>
  lightningd.logs.filter((l) => l.level === "unusual").map((l) => l.message);
export const broken = (lightningd: FakeLightningd) =>
  lightningd.logs.filter((l) => l.level === "broken").map((l) => l.message);
export const errorAnswers = (lightningd: FakeLightningd) =>
  lightningd.received.filter((m) => m.error !== undefined);

/** The compaction options' values in force when none is set. */
export const DEFAULT_COMPACTION_OPTIONS = {
  "backup-compact-auto": true,
  "backup-compact-ratio": 100,
  "backup-compact-min-mib": 64,
  "backup-retain-snapshots": 1,
};

/**
 * Replays the recorded runs (fresh start, restart, activity) on the node in `dir`, each
 * committed to its end and closed as lightningd closes it: the plugin exits 0 having written
 * only JSON-RPC, and the node's database then equals the activity run's.
 */
export async function replayRecordedRuns(dir: string, env?: Record<string, string>): Promise<void> {
  for (const name of SCENARIOS) {
    const lightningd = FakeLightningd.spawn({ lightningDir: dir, env });
    try {
      assertEquals(await lightningd.replay(loadFixture(name).raw), "committed", lightningd.aborted);
      assertEquals((await lightningd.close()).code, 0);
      assertEquals(lightningd.garbage, []);
    } finally {
      await lightningd.kill().catch(() => {});
    }
  }
  assertEquals(
    dumpDatabase(`${dir}/${DATABASE_NAME}`),
    dumpDatabase(loadFixture("activity").database),
  );
}
