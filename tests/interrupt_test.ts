/**
 * Ctrl-C (SIGINT) or SIGTERM while a long command runs (lib/cli/interrupt_scope.ts): the real
 * CLI stops, removes what it was writing, releases its lock, says so in one line and exits
 * 130 or 143; the backup still verifies and restores as before.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { CliProcess, type CliRun, runCliProcess } from "./support/cli_process.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { bumpStatement } from "./support/statements.ts";
import { DatabaseSync } from "node:sqlite";

/** A database of about `mib` MiB that restores (`vars.data_version` at 1), in `dir`. */
function bigDatabase(dir: string, mib: number): string {
  const path = `${dir}/source.sqlite3`;
  const db = new DatabaseSync(path);
  db.exec(`
    CREATE TABLE vars (name TEXT PRIMARY KEY, intval INTEGER);
    INSERT INTO vars VALUES ('data_version', 1);
    CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${mib * 4})
    INSERT INTO blobs (data) SELECT randomblob(256 * 1024) FROM n;`);
  db.close();
  return path;
}

/** A file backup at `dir/backup`: a snapshot of a large database and two changes on top. */
async function bigBackup(dir: string): Promise<string> {
  createFileBackup(`${dir}/backup`, { version: 1, path: bigDatabase(dir, 96) });
  Deno.removeSync(`${dir}/source.sqlite3`);
  const url = `file://${dir}/backup`;
  const writer = FileBackend.open(url, `${dir}/backup`);
  for (const version of [2, 3]) {
    await writer.append({ version, statements: [bumpStatement(version - 1)] });
  }
  writer.close();
  return url;
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
}

/** Runs `args` until a name in `dir` matches `started`, then sends `signal`. */
async function interrupted(
  args: string[],
  dir: string,
  started: RegExp,
  signal: Deno.Signal,
): Promise<CliRun> {
  const process = new CliProcess(args);
  while (!names(dir).some((name) => started.test(name))) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  process.signal(signal);
  return await process.result();
}

/** Each file of the backup at `dir`, by name, with its SHA-256. */
async function contents(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of names(dir)) {
    const digest = await crypto.subtle.digest("SHA-256", Deno.readFileSync(`${dir}/${name}`));
    files[name] = new Uint8Array(digest).toHex();
  }
  return files;
}

/** The backup at `url` holds what it held (`before`), is not locked, and restores. */
async function assertUntouched(url: string, dir: string, before: Record<string, string>) {
  assertEquals(await contents(dir), before);
  FileBackend.open(url, dir).close();
  const restored = `${dir}/../restored.sqlite3`;
  assertEquals(await runCliProcess(["restore", url, restored]).then((run) => run.code), 0);
  const db = new DatabaseSync(restored, { readOnly: true });
  assertEquals(db.prepare("SELECT intval FROM vars").get()?.intval, 3);
  db.close();
}

Deno.test("Ctrl-C stops a restore: exit 130, one line, nothing left at the target", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "interrupt-" });
  try {
    const url = await bigBackup(dir);
    Deno.mkdirSync(`${dir}/node`);
    const before = await contents(`${dir}/backup`);
    const run = await interrupted(
      ["restore", url, `${dir}/node`],
      `${dir}/node`,
      /\.restoring-\d+$/,
      "SIGINT",
    );
    assertEquals(run.code, 130, run.stderr.join("\n"));
    assertEquals(run.stderr, [
      `Interrupted: restore stopped; nothing was written to "${dir}/node"`,
    ]);
    assertEquals(names(`${dir}/node`), []);
    assertEquals(names(dir), ["backup", "node"]);
    await assertUntouched(url, `${dir}/backup`, before);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Ctrl-C stops restore --also while it reads the copies, before it opens the next", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "interrupt-" });
  try {
    const url = await bigBackup(dir);
    Deno.mkdirSync(`${dir}/node`);
    // Read on, the missing copy would be skipped and the restore refused for it (exit 1).
    const run = await interrupted(
      ["restore", url, `${dir}/node`, "--also", `file://${dir}/missing`],
      `${dir}/node`,
      /\.restoring-\d+$/,
      "SIGINT",
    );
    assertEquals(run.code, 130, [...run.stdout, ...run.stderr].join("\n"));
    assertEquals(run.stdout, []);
    assertEquals(run.stderr, [
      `Interrupted: restore stopped; nothing was written to "${dir}/node"`,
    ]);
    assertEquals(names(`${dir}/node`), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Ctrl-C stops a verify: exit 130, one line, its restored copy removed from TMPDIR", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "interrupt-" });
  try {
    const url = await bigBackup(dir);
    Deno.mkdirSync(`${dir}/tmp`);
    const process = new CliProcess(["verify", url], undefined, undefined, { TMPDIR: `${dir}/tmp` });
    // Once the restore into its scratch directory has started.
    const restoring = () =>
      names(`${dir}/tmp`).some((scratch) =>
        names(`${dir}/tmp/${scratch}`).some((name) => /\.restoring-\d+$/.test(name))
      );
    while (!restoring()) await new Promise((resolve) => setTimeout(resolve, 1));
    process.signal("SIGINT");
    const run = await process.result();
    assertEquals(run.code, 130, [...run.stdout, ...run.stderr].join("\n"));
    assertEquals(run.stdout, []);
    assertEquals(run.stderr, ["Interrupted: verify stopped; the backup is unchanged"]);
    // The node's whole database (in the clear, for an encrypted backup) is not left behind.
    assertEquals(names(`${dir}/tmp`), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`${signal} stops a compaction: exit ${code}, its work removed, the backup as it was`, async () => {
    const dir = Deno.makeTempDirSync({ prefix: "interrupt-" });
    try {
      const url = await bigBackup(dir);
      const before = await contents(`${dir}/backup`);
      const run = await interrupted(["compact", url], `${dir}/backup`, /\.tmp$/, signal);
      assertEquals(run.code, code, run.stderr.join("\n"));
      assertEquals(run.stderr, ["Interrupted: compact stopped; the backup is unchanged"]);
      assert(!names(`${dir}/backup`).some((name) => name.endsWith(".tmp")));
      await assertUntouched(url, `${dir}/backup`, before);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
