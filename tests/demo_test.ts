/**
 * `deno task demo` as a person runs it: a subprocess whose exit status says whether the
 * proof held, and which leaves nothing behind unless told to.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";

const DEMO = new URL("../demo.ts", import.meta.url).pathname;

async function runDemo(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", DEMO, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("the demo crashes, restarts, restores and proves it, then cleans up", async () => {
  const { code, stdout, stderr } = await runDemo();
  assertEquals(code, 0, `${stdout}\n${stderr}`);
  assertEquals(stderr, "");
  const root = /^cln-backup demo in (\S+)$/m.exec(stdout)?.[1];
  assert(root, stdout);
  assert(!exists(root), `${root} was left behind`);
  // init's warning is shown, as a demo's: its backup is on the node's disk.
  assertMatch(
    stdout,
    /^! init warns \(true of this demo.*\n {4}Warning: the backup ".*\/backup" is on the same filesystem as ".*\/lightning\/regtest", where the node's database will be: /m,
  );
  assertMatch(stdout, /^✓ fresh-start: 13 db_write hooks answered, node at version 11, /m);
  assertMatch(stdout, /^✓ restart: 4 db_write hooks answered, node at version 15, /m);
  const killed = /the backup holds change (\d+), the node rolled it back \(database at (\d+)\)/
    .exec(stdout);
  assert(killed, stdout);
  assertEquals(Number(killed[2]), Number(killed[1]) - 1);
  assertMatch(
    stdout,
    new RegExp(`plugin dropped the uncommitted change ${killed[1]} \\(rewind\\)`),
  );
  assertMatch(stdout, /^✓ 479 changes backed up \(482 hooks\), [\d.]+ s; hook round trip p50 /m);
  assertMatch(stdout, /^✓ proof: the restored database equals the node's, row for row \(/m);
  assertMatch(stdout, /data_version 479 on both, integrity_check ok$/m);
});

Deno.test("the demo keeps its directory with --keep, and refuses unknown options", async () => {
  const kept = await runDemo("--keep");
  assertEquals(kept.code, 0, kept.stderr);
  const root = /^kept (\S+)$/m.exec(kept.stdout)?.[1];
  assert(root, kept.stdout);
  try {
    assert(exists(`${root}/restored.sqlite3`));
    assert(exists(`${root}/lightning/regtest/backup.lock`));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
  const wrong = await runDemo("--kepp");
  assertEquals(wrong.code, 2);
  assertMatch(wrong.stderr, /Unknown option "--kepp"/);
});
