import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { loadFixture, PRE_4090_BACKUP } from "../../tests/support/fixtures.ts";
import { writeBase } from "../backends/file/create.ts";
import { readChain } from "../format/chain.ts";
import { verify } from "./verify.ts";
import { BufferedOutput, makeBackup, recordedChanges } from "./testing.ts";

async function run(url: string): Promise<{ code: number; output: BufferedOutput }> {
  const output = new BufferedOutput();
  return { code: await verify([url], output), output };
}

Deno.test("verify says OK for a sound backup and FAIL for a flipped byte", async () => {
  const dir = Deno.makeTempDirSync();
  const url = await makeBackup(
    `${dir}/backup`,
    recordedChanges(["restart"]),
    { version: 11, path: loadFixture("fresh-start").database },
  );
  const ok = await run(url);
  assertEquals(ok.code, 0, ok.output.stderr.join("\n"));
  assertEquals(ok.output.stdout, [
    `OK: "${url}" holds versions 11 to 15 in 6 records (snapshots at 11); every record ` +
    `reads, and it restores to version 15 passing SQLite's integrity check`,
  ]);

  // Flip one byte inside the snapshot's first part: its checksum no longer matches.
  const base = [...Deno.readDirSync(`${dir}/backup`)].find((e) => e.name.startsWith("base-"))!;
  const path = `${dir}/backup/${base.name}`;
  const bytes = Deno.readFileSync(path);
  bytes[64 + 32 + 100] ^= 0x01;
  Deno.writeFileSync(path, bytes);
  const fail = await run(url);
  assertEquals(fail.code, 1);
  assertEquals(fail.output.stdout, []);
  assertEquals(fail.output.stderr.length, 1);
  assertMatch(
    fail.output.stderr[0],
    /^FAIL: Cannot read backup: record payload checksum mismatch at offset 64 of ".*base-0+11\.clnb"; the backup is damaged/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("verify reads older snapshots, which a restore of the latest state skips", async () => {
  const dir = Deno.makeTempDirSync();
  const url = await makeBackup(
    `${dir}/backup`,
    recordedChanges(["restart"]),
    { version: 11, path: loadFixture("fresh-start").database },
  );
  writeBase(
    `${dir}/backup`,
    { version: 15, path: loadFixture("restart").database },
    { backupId: readChain(`${dir}/backup`).backupId, firstLog: 1 },
  );
  const ok = await run(url);
  assertEquals(ok.code, 0, ok.output.stderr.join("\n"));
  assertMatch(
    ok.output.stdout[0],
    /holds versions 11 to 15 in \d+ records \(snapshots at 11, 15\)/,
  );

  // Cut the older snapshot's end record (32 bytes of header, 12 of payload): every record
  // left checks, but the snapshot is incomplete, which only reading it as a snapshot shows.
  const path = `${dir}/backup/base-${"11".padStart(20, "0")}.clnb`;
  Deno.truncateSync(path, Deno.statSync(path).size - 44);
  const fail = await run(url);
  assertEquals(fail.code, 1);
  assertMatch(
    fail.output.stderr[0],
    /^FAIL: Cannot read backup: snapshot has no end record at offset 0 of ".*base-0+11\.clnb"/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("verify of a backup without snapshot, an empty one, a v1 file, a missing one", async () => {
  const dir = Deno.makeTempDirSync();
  const url = await makeBackup(`${dir}/backup`, recordedChanges(["fresh-start", "restart"]));
  const ok = await run(url);
  assertEquals(ok.code, 0, ok.output.stderr.join("\n"));
  assertMatch(ok.output.stdout[0], /^OK: .* holds versions 1 to 15 in 17 records \(no snapshot\)/);

  const v1 = await run(`file://${PRE_4090_BACKUP}`);
  assertEquals(v1.code, 0, v1.output.stderr.join("\n"));
  assertMatch(v1.output.stdout[0], /^OK: .* holds versions 1 to 46 in 46 records .* version 46/);

  const empty = await run(await makeBackup(`${dir}/empty`, []));
  assertEquals(empty.code, 0);
  assertMatch(empty.output.stdout[0], /is empty \(version 0\): nothing to restore yet$/);

  const missing = await run(`file://${dir}/none`);
  assertEquals(missing.code, 1);
  assert(missing.output.stderr[0].startsWith(`FAIL: Cannot open backup: nothing at "${dir}/none"`));
  Deno.removeSync(dir, { recursive: true });
});
