/**
 * A FIFO or device where a backup or backup.lock should be: every command and the plugin
 * refuse it with one line, instead of hanging in an open() that waits for a writer.
 *
 * Each runs in a process of its own, killed after a deadline: before the fix these hung
 * forever, and a hang in-process would stop the test run itself.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { dirname } from "node:path";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const DEADLINE_MS = 60_000;

function mkfifo(path: string): void {
  const made = new Deno.Command("mkfifo", { args: [path] }).outputSync();
  assert(made.success, new TextDecoder().decode(made.stderr));
}

/** Runs the CLI; `undefined` when it had to be killed at the deadline. */
async function cli(args: string[]): Promise<{ code: number; stderr: string } | undefined> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill("SIGKILL");
  }, DEADLINE_MS);
  const { code, stderr } = await child.output();
  clearTimeout(timer);
  return hung ? undefined : { code, stderr: new TextDecoder().decode(stderr).trim() };
}

Deno.test("status, verify and restore refuse a FIFO as the backup path", async () => {
  const dir = Deno.makeTempDirSync();
  const fifo = `${dir}/backup.fifo`;
  mkfifo(fifo);
  const url = `file://${fifo}`;
  for (const args of [["status", url], ["verify", url], ["restore", url, `${dir}/out.sqlite3`]]) {
    const run = await cli(args);
    assert(run, `${args[0]} hung on a FIFO`);
    assertEquals(run.code, 1, args[0]);
    assertEquals(run.stderr.split("\n").length, 1, run.stderr);
    assertMatch(
      run.stderr,
      new RegExp(`Cannot open backup: "${fifo}" is not a regular file or directory \\(a FIFO`),
    );
  }
  // A device too.
  const device = await cli(["status", "file:///dev/null"]);
  assert(device, "status hung on a device");
  assertMatch(device.stderr, /"\/dev\/null" is not a regular file or directory/);
  Deno.removeSync(dir, { recursive: true });
});

/** Starts the plugin in `dir`: it must answer getmanifest, then refuse a change with `why`. */
async function pluginRefuses(dir: string, why: RegExp): Promise<void> {
  const lightningd = FakeLightningd.spawn({ lightningDir: dir });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const hung = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), DEADLINE_MS);
    });
    const manifest = await Promise.race([lightningd.getmanifest(), hung]);
    assert(manifest, "the plugin hung before answering getmanifest");
    const answer = await lightningd.request("db_write", {
      data_version: 1,
      writes: ["UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = 0"],
    });
    const result = answer.result as { result: string; message: string };
    assert(result.result !== "continue", JSON.stringify(answer));
    assertMatch(result.message, why);
  } finally {
    clearTimeout(timer);
    await lightningd.kill().catch(() => {});
  }
}

Deno.test("the plugin answers, and refuses every change, when the backup path is a FIFO", async () => {
  const dir = Deno.makeTempDirSync();
  mkfifo(`${dir}/backup.fifo`);
  writeLockFile(dir, { backend_url: `file://${dir}/backup.fifo` });
  await pluginRefuses(dir, /is not a regular file or directory \(a FIFO, socket or device\?\)/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("the plugin answers, and refuses every change, when backup.lock is a FIFO", async () => {
  const dir = Deno.makeTempDirSync();
  mkfifo(`${dir}/backup.lock`);
  await pluginRefuses(
    dir,
    /^Cannot start backup: cannot read ".*backup\.lock": not a regular file/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("doctor fails a FIFO as lightningd's config, instead of hanging on it", async () => {
  const dir = makeNodeDir("fresh-start");
  try {
    mkfifo(`${dirname(dir)}/config`);
    const run = await cli(["doctor", "--lightning-dir", dir]);
    assert(run, "doctor hung on a FIFO config");
    assertEquals(run.code, 1);
  } finally {
    removeNodeDir(dir);
  }
});
