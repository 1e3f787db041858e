import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { loadFixture, PRE_4090_BACKUP, SCENARIOS } from "../../tests/support/fixtures.ts";
import { writeBase } from "../backends/file/create.ts";
import { readChain } from "../format/chain.ts";
import { checkBackup, verify } from "./verify.ts";
import { constants, zstdCompressSync } from "node:zlib";
import { craftRecord } from "../../tests/support/records.ts";
import type { BackupEntry, BackupReader } from "../backends/backend.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { Codec, MAX_PAYLOAD_BYTES, RecordKind } from "../format/record.ts";
import { BufferedOutput, makeBackup, recordedChanges } from "../../tests/support/cli_testing.ts";
import { pluginBackup } from "../../tests/support/compacting_backup.ts";

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

Deno.test("verify of a live backup checks the state it described, not a later one", async () => {
  const dir = Deno.makeTempDirSync();
  const all = recordedChanges(["fresh-start", "restart"]);
  const path = `${dir}/backup`;
  const url = await makeBackup(path, all.slice(0, -1));
  // The plugin appends the last change between verify's description and its restore.
  const backend = FileBackend.open(url, path);
  const reader = new FileBackupReader(url, path);
  const live: BackupReader = {
    url,
    describe() {
      const description = reader.describe();
      backend.append(all.at(-1)!);
      return description;
    },
    entries: (toVersion) => reader.entries(toVersion),
    close() {},
  };
  const temp = `${dir}/temp`;
  Deno.mkdirSync(temp);
  const lines = checkBackup(live, temp);
  backend.close();
  assertMatch(
    lines[0],
    /^OK: .* holds versions 1 to 14 in \d+ records .* it restores to version 14 passing/,
  );
  assertEquals(new FileBackupReader(url, path).describe().lastVersion, 15);
  Deno.removeSync(dir, { recursive: true });
});

/** A reader on which the plugin's compaction lands once, just after the first entry is read. */
class CompactedMidRead extends FileBackupReader {
  compaction: (() => void) | undefined;

  override *entries(toVersion?: number): Iterable<BackupEntry> {
    for (const entry of super.entries(toVersion)) {
      yield entry;
      const compaction = this.compaction;
      this.compaction = undefined;
      compaction?.();
    }
  }
}

Deno.test("verify of a file backup the plugin compacts meanwhile reads it again, not FAIL", async () => {
  const dir = Deno.makeTempDirSync();
  const all = recordedChanges(SCENARIOS);
  // The plugin: a base, then sealed logs after it that its next compaction deletes.
  const { backend, compact } = await pluginBackup(`${dir}/backup`, all.slice(0, 400));
  const reader = new CompactedMidRead(backend.url, backend.dir);
  reader.compaction = compact;
  const temp = `${dir}/temp`;
  Deno.mkdirSync(temp);
  try {
    const lines = checkBackup(reader, temp);
    assertMatch(lines[0], new RegExp(`^OK: .* restores to version ${all[399].version} passing`));
    assertEquals(reader.compaction, undefined, "the compaction landed mid-read");
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("verify of a backup ending in bytes that fail their checks says where it stopped", async () => {
  const dir = Deno.makeTempDirSync();
  const url = await makeBackup(`${dir}/backup`, recordedChanges(["fresh-start", "restart"]));
  const log = `${dir}/backup/log-${"1".padStart(20, "0")}.clnb`;
  const end = Deno.statSync(log).size;
  Deno.writeFileSync(log, new Uint8Array(10).fill(9), { append: true });
  const result = await run(url);
  assertEquals(result.code, 0, result.output.stderr.join("\n"));
  assertMatch(result.output.stdout[0], /^OK: .* restores to version 15 passing/);
  assertEquals(
    result.output.stdout[1],
    `note: stopped at version 15: the 10 bytes after it, at offset ${end} of "${log}", fail ` +
      `their checks: a change torn by a crash (never acknowledged, then version 15 is the ` +
      `node's) or a damaged change 16; if the node's database is at version 16 or later, the ` +
      `backup is damaged`,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("verify of a record claiming 400 MiB fails fast, naming file and offset, in bounded memory", async () => {
  const dir = Deno.makeTempDirSync();
  const url = await makeBackup(`${dir}/backup`, recordedChanges(["fresh-start"]));
  const log = `${dir}/backup/log-${"1".padStart(20, "0")}.clnb`;
  const end = Deno.statSync(log).size;
  // A checked header over a small zstd frame of zeros that decodes to 400 MiB.
  const stored = zstdCompressSync(new Uint8Array(1 << 20), {
    params: { [constants.ZSTD_c_compressionLevel]: 19 },
  });
  const frames = new Uint8Array(stored.length * 400);
  for (let i = 0; i < 400; i++) frames.set(stored, i * stored.length);
  const record = craftRecord({
    kind: RecordKind.Change,
    codec: Codec.Zstd,
    version: 12,
    stored: frames,
    rawLength: 400 * 1024 * 1024,
  });
  Deno.writeFileSync(log, record, { append: true });
  // In a process of its own: before the limit, this was a V8 fatal error at 2.9 GB.
  const script = `
    import { verify } from ${JSON.stringify(new URL("./verify.ts", import.meta.url).href)};
    const lines = [];
    const code = await verify([${
    JSON.stringify(url)
  }], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
    console.log(JSON.stringify({ code, lines, rss: Deno.memoryUsage().rss }));`;
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", script],
    stderr: "inherit",
  }).output();
  assert(child.success, `the verify process died (code ${child.code})`);
  const { code, lines, rss } = JSON.parse(new TextDecoder().decode(child.stdout));
  assertEquals(code, 1);
  assertEquals(lines, [
    `FAIL: Cannot read backup: record claims ${400 * 1024 * 1024} bytes, over the limit of ` +
    `${MAX_PAYLOAD_BYTES} at offset ${end} of "${log}"; the backup is damaged: restore from ` +
    `another copy, or init a new backup from the node's database`,
  ]);
  assert(rss < 200 * 1024 * 1024, `verify used ${rss} bytes of RSS`);
  Deno.removeSync(dir, { recursive: true });
});
