/**
 * The CLI as an operator runs it: `deno run cli.ts <command>`, in a subprocess, as
 * `deno task <command> -- ...` runs it (in the project directory, with the operator's
 * directory in INIT_CWD and a "--" before the arguments).
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { loadFixture } from "./support/fixtures.ts";
import { type Command, COMMANDS, runCli } from "../lib/cli/main.ts";
import { aloneNote } from "../lib/cli/restore.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const PROJECT = new URL("..", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string[];
  stderr: string[];
}

async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  // Not the suite's own INIT_CWD (set by `deno task test`): it names the commands a run
  // advises ("deno task ..."), which each test sets as it means to.
  const { INIT_CWD: _, ...inherited } = Deno.env.toObject();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd: PROJECT,
    clearEnv: true,
    env: { ...inherited, NO_COLOR: "1", ...env },
  }).output();
  const lines = (bytes: Uint8Array) => new TextDecoder().decode(bytes).split("\n").filter(Boolean);
  return { code, stdout: lines(stdout), stderr: lines(stderr) };
}

Deno.test("cli.ts: init, status, verify and restore as deno task runs them", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  const url = `file://${base}/backup`;
  const env = { INIT_CWD: base, TMPDIR: `${base}/tmp` };
  Deno.mkdirSync(`${base}/tmp`);

  // A relative --lightning-dir is the operator's, not the project's.
  const init = await cli(["init", "--", url, "--lightning-dir", "regtest"], env);
  assertEquals(init.code, 0, init.stderr.join("\n"));
  assertEquals(init.stdout.at(-1), `important-plugin=${dir}/cln-backup-plugin`);
  assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)), { backend_url: url });

  const status = await cli(["status", "--", url, "--json"], env);
  assertEquals(status.code, 0, status.stderr.join("\n"));
  assertEquals(JSON.parse(status.stdout.join("\n")).lastVersion, 11);

  const verify = await cli(["verify", url], env);
  assertEquals(verify.code, 0, verify.stderr.join("\n"));
  assertMatch(verify.stdout[0], /^OK: /);
  assertEquals([...Deno.readDirSync(`${base}/tmp`)], [], "verify removed its restored copy");

  const restore = await cli(["restore", "--", url, "restored.sqlite3"], env);
  assertEquals(restore.code, 0, restore.stderr.join("\n"));
  assertEquals(restore.stdout, [
    `Restored "${base}/restored.sqlite3" at version 11: 0 change(s) applied on top of the ` +
    `snapshot at version 11; it passes SQLite's integrity check`,
    aloneNote(url),
  ]);
  assertEquals(
    dumpDatabase(`${base}/restored.sqlite3`),
    dumpDatabase(loadFixture("fresh-start").database),
  );

  // An expected failure is one line on stderr, no stack trace, exit 1.
  const again = await cli(["restore", url, `${base}/restored.sqlite3`], env);
  assertEquals(again, {
    code: 1,
    stdout: [],
    stderr: [
      `Cannot restore backup: database already exists at "${base}/restored.sqlite3": move it ` +
      `aside or choose another target`,
    ],
  });
  const refused = await cli(["init", url, "--lightning-dir", dir], env);
  assertEquals(refused.code, 1);
  assertEquals(refused.stderr.length, 1);
  assertMatch(refused.stderr[0], /^Cannot init backup: ".*backup.lock" already exists/);
  removeNodeDir(dir);

  // The commands its advice names are run as this one was: by deno task.
  const empty = makeNodeDir();
  const doctor = await cli(["doctor", "--", "--lightning-dir", empty], env);
  assert(
    doctor.stdout.some((line) =>
      line.includes(`"deno task init -- file:///path/to/backup --lightning-dir '${empty}'"`)
    ),
    doctor.stdout.join("\n"),
  );
  removeNodeDir(empty);
});

Deno.test("cli.ts: help and usage errors", async () => {
  const help = await cli(["--help"]);
  assertEquals(help.code, 0);
  assertMatch(
    help.stdout.join("\n"),
    /Exit codes:\n {2}0 {2}.*\n {2}1 {2}.*\n.*\n {2}2 {2}usage error.*\n {2}3 {2}internal error/,
  );
  for (const command of ["init", "restore", "status", "verify", "upgrade", "doctor"]) {
    const output = new BufferedOutput();
    assertEquals(await runCli([command, "--help"], output), 0, command);
    assertMatch(output.text, new RegExp(`^Usage: cln-backup ${command}`));
  }
  assertEquals(await cli(["frobnicate"]), {
    code: 2,
    stdout: [],
    stderr: ['Usage error: unknown command "frobnicate": see "cln-backup --help"'],
  });
  const usage = await cli(["restore", "file:///x"]);
  assertEquals(usage.code, 2);
  assertEquals(usage.stderr, [
    'Usage error: "restore" takes <url> <file-or-dir>, got 1 argument(s): see ' +
    '"cln-backup restore --help"',
  ]);
  const none = await cli([]);
  assertEquals(none.code, 2);
  assert(none.stderr.includes("Exit codes:"));
});

Deno.test("cli.ts: a usage error names the help to read as the command was run", async () => {
  // The README: a message that advises a command names it as you ran this one. Usage errors
  // said "cln-backup ... --help" however it was run, a command backup-cli's user may not have.
  const asBackupCli = { CLN_BACKUP_CLI: "./backup-cli" };
  assertEquals((await cli(["status"], asBackupCli)).stderr, [
    'Usage error: "status" takes <url>, got 0 argument(s): see "./backup-cli status --help"',
  ]);
  assertEquals((await cli(["frobnicate"], asBackupCli)).stderr, [
    'Usage error: unknown command "frobnicate": see "./backup-cli --help"',
  ]);
  assertEquals((await cli(["status", "file:///x", "--bogus"], { INIT_CWD: PROJECT })).stderr, [
    `Usage error: Unknown option '--bogus': see "deno task status -- --help"`,
  ]);
});

Deno.test("a command whose code cannot be loaded (a file missing, or changed mid-update) is one line saying to install again", async () => {
  const status = COMMANDS.status;
  const missing = new URL("./no_such_command.ts", import.meta.url).href;
  const broken: [() => Promise<Command>, string][] = [
    [() => import(missing), `Module not found "${missing}".`],
    // An older file that no longer exports the command.
    [
      async () => (await import("../lib/cli/status.ts")).STATUS_SPEC as never,
      "its module exports no status command",
    ],
  ];
  try {
    for (const [load, cause] of broken) {
      COMMANDS.status = load;
      const output = new BufferedOutput();
      assertEquals(await runCli(["status", "file:///x"], output), 1);
      assertEquals(output.stdout, []);
      assertEquals(output.stderr, [
        `Cannot run status: its code cannot be loaded (${cause}): install cln-backup again, ` +
        `each file readable by the user that runs it`,
      ]);
    }
  } finally {
    COMMANDS.status = status;
  }
});
