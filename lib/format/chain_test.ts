import { crc32 } from "node:zlib";
import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { loadFixture, type Scenario } from "../../tests/support/fixtures.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { recordedChanges } from "../../tests/support/cli_testing.ts";
import { readChain, scanLogs, sealedVersion } from "./chain.ts";
import { baseName, logName } from "./layout.ts";
import { CorruptBackupError, encodeSegmentHeader, SegmentKind } from "./segment.ts";

const CHANGES = recordedChanges(["restart"]);

/** A backup on a snapshot at version 11 with the restart run's changes in logs of one change each. */
async function build(
  path: string,
  snapshot: { version: number; scenario: Scenario } = { version: 11, scenario: "fresh-start" },
) {
  createFileBackup(path, {
    version: snapshot.version,
    path: loadFixture(snapshot.scenario).database,
  });
  const backend = FileBackend.open(`file://${path}`, path, { segmentBytes: 256 });
  for (const change of CHANGES.filter((c) => c.version > snapshot.version)) {
    await backend.append(change);
  }
  backend.close();
  return { path, url: `file://${path}`, logs: readChain(path).logs.map((l) => l.path) };
}

type Attempt = "describe" | "entries" | "open";

/** Every reader and the writer (or the `only` ones) refuse the backup, naming `path`. */
function assertRefused(
  dir: string,
  path: string,
  why: RegExp,
  only: Attempt[] = ["describe", "entries", "open"],
): void {
  const reader = new FileBackupReader(`file://${dir}`, dir);
  const attempts: Record<Attempt, () => unknown> = {
    describe: () => reader.describe(),
    entries: () => [...reader.entries()],
    open: () => FileBackend.open(`file://${dir}`, dir).close(),
  };
  for (const what of only) {
    const attempt = attempts[what];
    let error: unknown;
    try {
      attempt();
    } catch (caught) {
      error = caught;
    }
    assert(error instanceof CorruptBackupError, `${what}: ${error}`);
    assertEquals(error.path, path, `${what}: ${error.message}`);
    assertMatch(error.message, why, what);
    assertEquals(error.message.split("\n").length, 1);
  }
}

function changesRead(dir: string): number[] {
  const entries = [...new FileBackupReader(`file://${dir}`, dir).entries()];
  return entries.flatMap((e) => e.kind === "change" ? [e.version] : []);
}

Deno.test("chain: a sound backup of several logs reads whole", async () => {
  const dir = Deno.makeTempDirSync();
  const { path, logs } = await build(`${dir}/a`);
  assert(logs.length >= 3, `only ${logs.length} logs`);
  assertEquals(changesRead(path), [12, 13, 14, 15]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a base copied in from another backup is refused by name", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const b = await build(`${dir}/b`);
  const other = await build(`${dir}/other`, { version: 13, scenario: "restart" });
  // Under its own name, newer than this backup's base: a restore would start from it.
  const copied = `${a.path}/${baseName(13)}`;
  Deno.copyFileSync(`${other.path}/${baseName(13)}`, copied);
  assertRefused(
    a.path,
    copied,
    /^Cannot read backup: a segment of another backup \(id [0-9a-f]{32}/,
  );
  Deno.removeSync(copied);
  // In place of this backup's own base.
  Deno.copyFileSync(`${b.path}/${baseName(11)}`, `${a.path}/${baseName(11)}`);
  assertRefused(a.path, `${a.path}/${baseName(11)}`, /a segment of another backup/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a log copied in from another backup is refused by name", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const b = await build(`${dir}/b`);
  Deno.copyFileSync(b.logs[1], a.logs[1]);
  assertRefused(a.path, a.logs[1], /a segment of another backup/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: deleting the newest log, or one in the middle, is refused by name", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const newest = a.logs.at(-1)!;
  const saved = Deno.readFileSync(newest);
  Deno.removeSync(newest);
  assertRefused(
    a.path,
    newest,
    /^Cannot read backup: a log segment that ".*" is sealed with is missing at "/,
  );
  Deno.writeFileSync(newest, saved);
  assertEquals(changesRead(a.path), [12, 13, 14, 15]);
  Deno.removeSync(a.logs[1]);
  assertRefused(a.path, a.logs[1], /^Cannot read backup: a log segment is missing at "/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: the first log missing, with no base to name it, is refused", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/a`;
  createFileBackup(path);
  const backend = FileBackend.open(`file://${path}`, path, { segmentBytes: 256 });
  for (const change of recordedChanges(["fresh-start"])) await backend.append(change);
  backend.close();
  Deno.removeSync(`${path}/${logName(1)}`);
  assertRefused(path, `${path}/${logName(1)}`, /a log segment is missing/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a log that is a symlink, a FIFO or a directory is refused by name", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const newest = a.logs.at(-1)!;
  const copy = `${dir}/outside.clnb`;
  Deno.renameSync(newest, copy);
  // A symlink to the very same bytes: still refused, it could lead anywhere.
  Deno.symlinkSync(copy, newest);
  assertRefused(a.path, newest, /^Cannot read backup: a symlink, not a segment file, at "/);
  Deno.removeSync(newest);
  const mkfifo = new Deno.Command("mkfifo", { args: [newest] }).outputSync();
  assert(mkfifo.success, new TextDecoder().decode(mkfifo.stderr));
  assertRefused(a.path, newest, /a FIFO, socket or device, not a segment file/);
  Deno.removeSync(newest);
  Deno.mkdirSync(newest);
  assertRefused(a.path, newest, /a directory, not a segment file/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a sealed log cut at a record boundary, with records after it, is refused", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  // Cut the seal (32 bytes of header, 8 of payload) off the first log.
  const first = Deno.readFileSync(a.logs[0]);
  Deno.writeFileSync(a.logs[0], first.subarray(0, first.length - 40));
  assertRefused(a.path, a.logs[1], /a log that follows ".*log-0+1\.clnb", which has no seal/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a roll a crash interrupted (an empty next log, no seal yet) is whole", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const chain = readChain(a.path);
  const live = chain.logs.at(-1)!;
  const next = `${a.path}/${logName(live.number + 1)}`;
  Deno.writeFileSync(
    next,
    encodeSegmentHeader({
      kind: SegmentKind.Log,
      number: live.number + 1,
      backupId: chain.backupId,
      firstLog: 0,
    }),
  );
  assertEquals(changesRead(a.path), [12, 13, 14, 15]);
  assertEquals(new FileBackupReader(a.url, a.path).describe().lastVersion, 15);
  const messages: string[] = [];
  const backend = FileBackend.open(a.url, a.path, { log: (m) => messages.push(m) });
  assertEquals(backend.state().version, 15);
  backend.close();
  assertEquals(messages, [
    `removed "${next}", an empty log a crash left while it was being started`,
  ]);
  assertEquals(readChain(a.path).logs.at(-1)!.path, live.path);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a sealed log with zeros after its seal (a power cut in a roll) reads whole, sealed", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const sealed = readChain(a.path).logs.slice(0, -1);
  const versions = sealed.map(sealedVersion);
  assert(versions.every((v) => v !== undefined), `${versions}`);
  // The zeros the writer wrote ahead, kept by a power cut that lost the cut made before the seal.
  for (const log of sealed) {
    const file = Deno.openSync(log.path, { append: true });
    file.writeSync(new Uint8Array(64 << 10));
    file.close();
  }
  assertEquals(readChain(a.path).logs.slice(0, -1).map(sealedVersion), versions);
  assertEquals(changesRead(a.path), [12, 13, 14, 15]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a seal whose own last byte is zero, zeros after it, is found (log 255 names log 256)", async () => {
  const tmp = Deno.makeTempDirSync();
  const dir = `${tmp}/a`;
  createFileBackup(dir);
  const backend = FileBackend.open(`file://${dir}`, dir, { segmentBytes: 64 });
  for (let version = 1; version <= 260; version++) {
    await backend.append({ version, statements: [`UPDATE vars SET intval = ${version}`] });
  }
  backend.close();
  const log = readChain(dir).logs.find((l) => l.number === 255)!;
  const bytes = Deno.readFileSync(log.path);
  // The seal's payload is the next log's sequence, u64 big-endian: 256 ends in a zero byte.
  assertEquals([...bytes.subarray(-2)], [1, 0]);
  const version = sealedVersion(log);
  assert(version !== undefined);
  const file = Deno.openSync(log.path, { append: true });
  file.writeSync(new Uint8Array(4096));
  file.close();
  assertEquals(sealedVersion(log), version);
  const read = changesRead(dir);
  assertEquals(read.length, 260);
  assertEquals(read.at(-1), 260);
  Deno.removeSync(tmp, { recursive: true });
});

Deno.test("chain: a base with a record after its end record is refused by describe and by restore", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const base = readChain(a.path).bases[0].path;
  const bytes = Deno.readFileSync(base);
  // The end record (a 32-byte header and 12 bytes of payload), stored again after itself:
  // every record checks, but a base ends at its end record.
  const end = bytes.length - 44;
  Deno.writeFileSync(base, bytes.subarray(end), { append: true });
  // The writer reads only the base's last record, an end record: it opens the backup as before.
  assertRefused(
    a.path,
    base,
    new RegExp(`: a record after the snapshot end at offset ${bytes.length} of "`),
    ["describe", "entries"],
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a base cut before its end record is refused by describe, restore and the writer", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const base = readChain(a.path).bases[0].path;
  // Cut at a record boundary, its end record gone: every record left checks.
  Deno.truncateSync(base, Deno.statSync(base).size - 44);
  // status would show the base as sound, where a restore from it fails.
  assertRefused(a.path, base, /: snapshot has no end record at offset 0 of "/, [
    "describe",
    "entries",
  ]);
  // Nor does the writer put changes on top of it (it reads the base's last bytes only).
  assertRefused(
    a.path,
    base,
    /a base that does not end with its snapshot's end record \(cut short\?\) at offset \d+ of "/,
    ["open"],
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a base with zeros after its end record is read whole and opened by the writer", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const base = readChain(a.path).bases[0].path;
  // Zeros after the last record are no record, as in a log: a restore reads the base whole.
  const file = Deno.openSync(base, { append: true });
  file.writeSync(new Uint8Array(4096));
  file.close();
  assertEquals(changesRead(a.path), [12, 13, 14, 15]);
  const backend = FileBackend.open(a.url, a.path);
  await backend.append({ version: 16, statements: ["UPDATE vars SET intval = 16"] });
  backend.close();
  assertEquals(changesRead(a.path), [12, 13, 14, 15, 16]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a seal that names another log, or another version, is refused", async () => {
  const dir = Deno.makeTempDirSync();
  const a = await build(`${dir}/a`);
  const pristine = Deno.readFileSync(a.logs[0]);
  // The seal: the last 40 bytes (a 32-byte header, then the next log's sequence).
  const seal = pristine.length - 40;
  const cases: [(view: DataView) => void, RegExp][] = [
    [(view) => view.setBigUint64(seal + 8, 99n), /a seal at another version/],
    [(view) => view.setBigUint64(seal + 32, 3n), /a seal that names another log/],
  ];
  for (const [set, why] of cases) {
    const bytes = pristine.slice();
    const view = new DataView(bytes.buffer);
    set(view);
    view.setUint32(seal + 24, crc32(bytes.subarray(seal + 32)));
    view.setUint32(seal, crc32(bytes.subarray(seal + 4, seal + 32)));
    Deno.writeFileSync(a.logs[0], bytes);
    assertRefused(a.path, a.logs[0], new RegExp(`${why.source} at offset ${seal} of "`));
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("chain: a reader that listed the logs before a roll reads on into the new log", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup`;
  createFileBackup(path);
  const writer = FileBackend.open(`file://${path}`, path, { segmentBytes: 4096 });
  const changes = recordedChanges(["fresh-start", "restart", "activity"]);
  try {
    const early = changes.slice(0, 20);
    for (const change of early) await writer.append(change);
    const listed = readChain(path);
    const live = writer.liveSequence;
    // The writer rolls (next log made, then the seal) after the reader listed the directory.
    let appended = early.length;
    while (writer.liveSequence === live) await writer.append(changes[appended++]);
    const versions = [...scanLogs(listed, listed.start, { decode: false })]
      .map((record) => record.header.version);
    assertEquals(versions, changes.slice(0, appended).map((c) => c.version));
  } finally {
    writer.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
