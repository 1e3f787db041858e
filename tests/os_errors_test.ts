/**
 * File-system errors in init, restore, upgrade, rekey and verify reach the operator as one line that names the
 * path and says what to do, not as the OS's words. The CLI runs as a user that file permissions
 * bind (`nobody` when the tests run as root, who may write anywhere).
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { CliProcess, runCliProcess, unprivilegedUser } from "./support/cli_process.ts";
import {
  BufferedOutput,
  makeBackup,
  makeNodeDir,
  recordedChanges,
  removeNodeDir,
} from "./support/cli_testing.ts";
import { loadFixture, PRE_4090_BACKUP } from "./support/fixtures.ts";
import { runBackupCli } from "./support/backup_cli.ts";
import { mountTmpfs, run as runCommand } from "./support/tmpfs.ts";
import { restore } from "../lib/cli/restore.ts";
import { upgrade } from "../lib/cli/upgrade.ts";
import { rekey } from "../lib/cli/rekey.ts";
import { makeEncryptedBackup, PASSPHRASE } from "./support/encrypted.ts";

/** A directory others may read and enter but not write to. */
function readOnlyDir(): string {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-ro-" });
  Deno.chmodSync(dir, 0o755);
  return dir;
}

/** A backup at `path` the CLI's user may read: made 0700 as any backup, then opened to it. */
async function readableBackup(path: string): Promise<string> {
  const url = await makeBackup(path, recordedChanges(["fresh-start"]));
  Deno.chmodSync(path, 0o755);
  return url;
}

Deno.test("restore into a directory the user may not write: which, and what to do", async () => {
  const user = unprivilegedUser();
  const dir = readOnlyDir();
  const url = await readableBackup(`${dir}/backup`);
  Deno.mkdirSync(`${dir}/target`, { mode: 0o555 });
  Deno.chmodSync(`${dir}/target`, 0o555);
  const run = await runCliProcess(["restore", url, `${dir}/target`], user);
  assertEquals(run.code, 1, run.stderr.join("\n"));
  assertEquals(run.stderr.length, 1);
  assertMatch(
    run.stderr[0],
    new RegExp(
      `^Cannot restore backup: permission denied when opening "${dir}/target/lightningd\\.sqlite3\\.` +
        `restoring-\\d+": check the permissions of "${dir}/target", or run this as the user who ` +
        `owns it$`,
    ),
  );
  assertEquals([...Deno.readDirSync(`${dir}/target`)], []);
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(user.denoDir, { recursive: true });
});

Deno.test("init of a backup where the user may not create it: which, and what to do", async () => {
  const user = unprivilegedUser();
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  Deno.chmodSync(base, 0o755);
  Deno.chmodSync(dir, 0o777);
  const run = await runCliProcess(
    ["init", `file://${base}/backups/node`, "--lightning-dir", dir],
    user,
  );
  assertEquals(run.code, 1, run.stderr.join("\n"));
  assertEquals(run.stderr, [
    `Cannot init backup: permission denied when creating the directory "${base}/backups": check the ` +
    `permissions of "${base}", or run this as the user who owns it`,
  ]);
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name), ["regtest"]);
  removeNodeDir(dir);
  Deno.removeSync(user.denoDir, { recursive: true });
});

Deno.test("init of a node whose database the user may not read: which, and what to do", async () => {
  const user = unprivilegedUser();
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  Deno.chmodSync(base, 0o777);
  Deno.chmodSync(dir, 0o777);
  Deno.chmodSync(`${dir}/lightningd.sqlite3`, 0o600);
  const run = await runCliProcess(
    ["init", `file://${base}/backups/node`, "--lightning-dir", dir],
    user,
  );
  assertEquals(run.code, 1, run.stderr.join("\n"));
  assertEquals(run.stderr, [
    `Cannot init backup: cannot open "${dir}/lightningd.sqlite3" (unable to open database ` +
    `file): check that you may read it, or run this as the user lightningd runs as`,
  ]);
  assertEquals([...Deno.readDirSync(`${base}/backups`)], []);
  removeNodeDir(dir);
  Deno.removeSync(user.denoDir, { recursive: true });
});

Deno.test("a killed run's work file the user may not remove: which, and what to do", async () => {
  const user = unprivilegedUser();
  const dir = readOnlyDir();
  const url = await readableBackup(`${dir}/backup`);
  // A sticky directory, as /tmp: anyone may create files, only a file's owner remove them.
  Deno.mkdirSync(`${dir}/target`);
  Deno.chmodSync(`${dir}/target`, 0o1777);
  const ended = new Deno.Command("true").spawn();
  await ended.status;
  const leftover = `${dir}/target/old.sqlite3.restoring-${ended.pid}`;
  Deno.writeTextFileSync(leftover, "");
  const run = await runCliProcess(["restore", url, `${dir}/target/new.sqlite3`], user);
  assertEquals(run.code, 0, run.stderr.join("\n"));
  assertEquals(
    run.stdout[0],
    `Could not remove "${leftover}", left by process ${ended.pid}, a killed restore: operation ` +
      `not permitted when removing "${leftover}": check the permissions of "${dir}/target", or ` +
      `run this as the user who owns it`,
  );
  assertMatch(run.stdout[1], /^Restored ".*\/new\.sqlite3" at version 11/);
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(user.denoDir, { recursive: true });
});

Deno.test("upgrade with a backup.lock the user may not read: which, and what to do", async () => {
  const user = unprivilegedUser();
  const dir = makeNodeDir();
  Deno.chmodSync(`${dir}/..`, 0o755);
  Deno.writeTextFileSync(`${dir}/backup.lock`, '{"backend_url": "file:///x.dbak"}', {
    mode: 0o600,
  });
  const run = await runCliProcess(["upgrade", "--lightning-dir", dir], user);
  assertEquals(run.code, 1, run.stderr.join("\n"));
  assertEquals(run.stderr, [
    `Cannot start backup: permission denied when reading "${dir}/backup.lock": check the ` +
    `permissions of "${dir}/backup.lock", or run this as the user who owns it`,
  ]);
  removeNodeDir(dir);
  Deno.removeSync(user.denoDir, { recursive: true });
});

Deno.test("verify of a backup with a segment the user may not read: which, and what to do", async () => {
  const user = unprivilegedUser();
  const dir = readOnlyDir();
  const url = await readableBackup(`${dir}/backup`);
  const log = `${dir}/backup/log-${"1".padStart(20, "0")}.clnb`;
  Deno.chmodSync(log, 0o600);
  const run = await runCliProcess(["verify", url], user);
  assertEquals(run.code, 1, run.stderr.join("\n"));
  assertEquals(run.stderr, [
    `FAIL: Cannot verify backup: permission denied when opening "${log}": check the ` +
    `permissions of "${dir}/backup", or run this as the user who owns it`,
  ]);
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(user.denoDir, { recursive: true });
});

Deno.test("verify with a temporary directory it cannot make its copy in: which, and what to do", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-tmpdir-" });
  try {
    const url = await makeBackup(`${dir}/backup`, recordedChanges(["fresh-start"]));
    Deno.writeTextFileSync(`${dir}/not-a-dir`, "");
    const env = { TMPDIR: `${dir}/not-a-dir` };
    const expected = {
      code: 1,
      stderr: [
        `FAIL: Cannot verify backup: cannot make a scratch directory in "${dir}/not-a-dir" ` +
        `(TMPDIR): not a directory: set TMPDIR to a directory this user may write, with room ` +
        `for a copy of the node's database`,
      ],
    };
    const run = await new CliProcess(["verify", url], undefined, undefined, env).result();
    assertEquals({ code: run.code, stderr: run.stderr }, expected);
    // backup-cli, the operator's way, under the permissions verify gets.
    const { code, err } = await runBackupCli(["verify", url], env);
    assertEquals({ code, stderr: err }, expected);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("restore onto a full file system: which, and what to do, by snapshot or by changes", async () => {
  // A snapshot is written by Deno (its error names no path), changes by SQLite ("database or
  // disk is full"): either reached the operator without the place it filled up.
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-full-" });
  const target = `${dir}/small`;
  Deno.mkdirSync(target);
  try {
    // Each backup twice: a copy is named once (restore refuses one named twice).
    const snapshots = ["snapshot", "snapshot-copy"].map((name) =>
      makeBackup(`${dir}/${name}`, [], { version: 479, path: loadFixture("activity").database })
    );
    const changes = ["changes", "changes-copy"].map((name) =>
      makeBackup(`${dir}/${name}`, recordedChanges(["fresh-start"]))
    );
    const backups = await Promise.all([...snapshots, ...changes]);
    if (!mountTmpfs(target, 64 * 1024)) return;
    for (const [url, copy] of [backups.slice(0, 2), backups.slice(2)]) {
      for (const also of [[], ["--also", copy]]) {
        const output = new BufferedOutput();
        assertEquals(await restore([url, target, ...also], output), 1);
        const line =
          `the file system of "${target}" is full \\(no space or quota left\\); nothing was ` +
          `written there: free some space on it, or restore to another file system`;
        assertMatch(
          output.transcript,
          also.length === 0
            ? new RegExp(`^Cannot restore backup: ${line}$`)
            : new RegExp(`^Skipped ${url}: Cannot restore backup: ${line}\n`),
        );
        assertEquals([...Deno.readDirSync(target)], []);
      }
    }
  } finally {
    runCommand("umount", [target]);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("upgrade onto a full file system: which, and what to do; backup.lock unchanged", async () => {
  // The converted (or encrypted) copy is written by the backup's writer, whose error is the
  // plugin's ("then restart lightningd"), or by Deno, whose error names no path.
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-full-" });
  const target = `${dir}/small`;
  Deno.mkdirSync(target);
  const node = makeNodeDir();
  try {
    Deno.copyFileSync(PRE_4090_BACKUP, `${dir}/node.dbak`);
    const plain = await makeBackup(`${dir}/plain`, [], {
      version: 479,
      path: loadFixture("activity").database,
    });
    Deno.writeTextFileSync(`${dir}/passphrase`, "full disk passphrase\n", { mode: 0o600 });
    if (!mountTmpfs(target, 16 * 1024)) return;
    const cases = [
      { lock: `file://${dir}/node.dbak`, args: [] },
      { lock: plain, args: ["--encrypt", "--passphrase-file", `${dir}/passphrase`] },
      { lock: undefined, args: [`file://${dir}/node.dbak`] },
    ];
    for (const { lock, args } of cases) {
      if (lock) {
        Deno.writeTextFileSync(`${node}/backup.lock`, JSON.stringify({ backend_url: lock }));
      }
      const dirArgs = lock ? ["--lightning-dir", node] : [];
      const output = new BufferedOutput();
      const code = await upgrade([...dirArgs, ...args, "--to", `file://${target}/new`], output);
      assertEquals(code, 1, output.transcript);
      assertMatch(
        output.transcript,
        new RegExp(
          `^Cannot upgrade backup: the file system of "${target}" is full \\(no space or ` +
            `quota left\\); nothing was changed: free some space on it, or choose another ` +
            `place with --to, then run upgrade again$`,
        ),
      );
      assertEquals([...Deno.readDirSync(target)], []);
      if (lock) {
        assertEquals(JSON.parse(Deno.readTextFileSync(`${node}/backup.lock`)).backend_url, lock);
      }
    }
  } finally {
    runCommand("umount", [target]);
    Deno.removeSync(dir, { recursive: true });
    removeNodeDir(node);
  }
});

Deno.test("rekey onto a full file system: which, and what to do; key.json as it was, nothing beside it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-full-" });
  const small = `${dir}/small`;
  Deno.mkdirSync(small);
  try {
    if (!mountTmpfs(small, 256 * 1024)) return;
    await makeEncryptedBackup(`${small}/backup`);
    // Fill what is left, as another program's files would.
    try {
      Deno.writeFileSync(`${small}/fill`, new Uint8Array(1024 * 1024));
    } catch {
      // Full, as meant.
    }
    const before = [...Deno.readDirSync(`${small}/backup`)].map((e) => e.name).sort();
    const keyJson = Deno.readFileSync(`${small}/backup/key.json`);
    Deno.writeTextFileSync(`${dir}/old`, `${PASSPHRASE}\n`, { mode: 0o600 });
    Deno.writeTextFileSync(`${dir}/new`, "second passphrase\n", { mode: 0o600 });
    const output = new BufferedOutput();
    const code = await rekey(
      [
        `file://${small}/backup`,
        "--passphrase-file",
        `${dir}/old`,
        "--new-passphrase-file",
        `${dir}/new`,
      ],
      output,
    );
    assertEquals(code, 1, output.transcript);
    assertEquals(output.stderr, [
      `Cannot rekey backup: the file system of "${small}/backup" is full (no space or quota ` +
      `left); key.json is as it was (the old secrets open it): free some space on it, then run ` +
      `this again`,
    ]);
    assertEquals(Deno.readFileSync(`${small}/backup/key.json`), keyJson);
    assertEquals([...Deno.readDirSync(`${small}/backup`)].map((e) => e.name).sort(), before);
  } finally {
    runCommand("umount", [small]);
    Deno.removeSync(dir, { recursive: true });
  }
});
