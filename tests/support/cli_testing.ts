/**
 * What the CLI tests share: an {@linkcode Output} that keeps what a command printed, the
 * recorded lightningd runs as changes, and builders for backups and lightning dirs.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import type { Change } from "../../lib/backends/backend.ts";
import { createFileBackup } from "../../lib/backends/file/create.ts";
import { FileBackend } from "../../lib/backends/file/writer.ts";
import type { Output } from "../../lib/cli/args.ts";
import { splitMessages } from "./fake_lightningd.ts";
import { assertEquals, assertMatch } from "./assert.ts";
import { type Fixture, loadFixture, type Scenario } from "./fixtures.ts";

/** Keeps what a command printed, for tests to look at. */
export class BufferedOutput implements Output {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];

  out(line: string): void {
    this.stdout.push(line);
  }

  err(line: string): void {
    this.stderr.push(line);
  }

  get text(): string {
    return this.stdout.join("\n");
  }

  /** Every line, stdout's then stderr's: what a failed assertion shows. */
  get transcript(): string {
    return [...this.stdout, ...this.stderr].join("\n");
  }
}

/** The `db_write`s of recorded runs, in order, as changes. */
export function recordedChanges(scenarios: readonly Fixture["name"][]): Change[] {
  return scenarios.flatMap((name) =>
    splitMessages(loadFixture(name).raw)
      .filter((m) => m.json.method === "db_write")
      .map((m) => ({ version: m.json.params.data_version, statements: m.json.params.writes }))
  );
}

/** Creates a file backup at `path` holding `changes` (on top of `snapshot`, when given). */
export async function makeBackup(
  path: string,
  changes: readonly Change[],
  snapshot?: { version: number; path: string },
): Promise<string> {
  createFileBackup(path, snapshot);
  const url = `file://${path}`;
  const backend = FileBackend.open(url, path);
  try {
    for (const change of changes) await backend.append(change);
  } finally {
    backend.close();
  }
  return url;
}

/**
 * A fake filesystem id (lib/backup/same_disk.ts's seam): paths under `mount` are on another
 * disk (2) than every other path (1), as if a second disk were mounted there.
 */
export function otherDiskAt(mount: string): (path: string) => number {
  return (path) => path === mount || path.startsWith(`${mount}/`) ? 2 : 1;
}

/** What init says of a launcher that runs Deno from npx's cache (`npx deno task test`). */
const NPX_DENO_WARNING = /^Warning: the launcher runs Deno from npx's cache /;

/**
 * What a set-up command said on stderr, less the launcher's warning of a Deno in npx's cache:
 * that says how this test's Deno came.
 */
export function setUpWarnings(output: BufferedOutput): string[] {
  return output.stderr.filter((line) => !NPX_DENO_WARNING.test(line));
}

/**
 * Asserts a set-up command (init, mirror, upgrade) succeeded for the node at `dir`, with the
 * one same-disk warning `expected` on stderr, or nothing there when it is undefined.
 */
export function assertSetUp(
  code: number,
  output: BufferedOutput,
  dir: string,
  expected: RegExp | undefined,
  what: string,
): void {
  assertEquals(code, 0, `${what}: ${output.transcript}`);
  const warnings = setUpWarnings(output);
  if (expected === undefined) assertEquals(warnings, [], what);
  else {
    assertEquals(warnings.length, 1, `${what}: ${output.transcript}`);
    assertMatch(warnings[0], expected);
  }
  assertEquals(output.stdout.at(-1), `important-plugin=${dir}/cln-backup-plugin`, what);
}

/** A temporary network directory, optionally holding a copy of a recorded run's database. */
export function makeNodeDir(database?: Scenario): string {
  const base = Deno.makeTempDirSync({ prefix: "cln-backup-test-" });
  const dir = `${base}/regtest`;
  Deno.mkdirSync(dir);
  if (database) {
    Deno.copyFileSync(loadFixture(database).database, `${dir}/lightningd.sqlite3`);
    Deno.writeFileSync(`${dir}/hsm_secret`, new Uint8Array(32), { mode: 0o400 });
  }
  return dir;
}

/** Removes a directory made by {@linkcode makeNodeDir} with its base. */
export function removeNodeDir(dir: string): void {
  // Not `${dir}/..`: removing a path ending in ".." empties the base but leaves it behind.
  Deno.removeSync(dirname(dir), { recursive: true });
}

/** Cuts `dir`'s lightningd.sqlite3 to half its size: the damage a failing disk leaves. */
export function damageDatabase(dir: string): void {
  const database = `${dir}/lightningd.sqlite3`;
  const file = Deno.openSync(database, { write: true });
  try {
    file.truncateSync(Math.floor(file.statSync().size / 2));
  } finally {
    file.close();
  }
}

/**
 * Leaves the node database in `dir` as a lightningd killed in the middle of a write does: with
 * a hot journal (`-journal`) that SQLite must roll back before anyone reads the database.
 */
export function leaveHotJournal(dir: string): void {
  const database = `${dir}/lightningd.sqlite3`;
  const scratch = Deno.makeTempDirSync({ prefix: "cln-backup-test-hot-" });
  Deno.copyFileSync(database, `${scratch}/db`);
  const db = new DatabaseSync(`${scratch}/db`);
  try {
    // A cache of one page spills the transaction's pages to the file, behind its journal.
    db.exec("PRAGMA cache_size = 1; BEGIN; UPDATE vars SET intval = intval + 1;");
    db.exec("CREATE TABLE spill (x BLOB); INSERT INTO spill VALUES (randomblob(100000));");
    Deno.copyFileSync(`${scratch}/db`, database);
    Deno.copyFileSync(`${scratch}/db-journal`, `${database}-journal`);
    db.exec("ROLLBACK");
  } finally {
    db.close();
    Deno.removeSync(scratch, { recursive: true });
  }
}
