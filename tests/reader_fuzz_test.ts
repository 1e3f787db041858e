/**
 * A seeded fuzz test of every reader: mutations of real backups (a format 3 backup built from
 * the recorded runs, the Python plugin's v1 fixture), of `backup.lock` and of backup URLs.
 *
 * Each case mutates one thing, reads in-process, and puts the files back. It asserts:
 *
 * - no crash: a read succeeds, or fails with one of our one-line errors ("Cannot ...");
 * - bounded memory: the isolate's heap and buffers stay under a fixed bound over all cases;
 * - never a wrong success: for mutations that checksums can catch (not forged ones that fix
 *   up the CRCs, nor v1 files, which have none), a read that succeeds yields the true snapshot
 *   and a prefix of the true changes; a read that stops early reports a tail, unless the live
 *   log was cut exactly at a record boundary (which nothing in a file can show; the plugin's
 *   version check catches it against the node). Now and then a real restore must agree.
 *
 * `FUZZ_CASES` (default 50,000) and `FUZZ_SEED` replay or extend a run.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { assert, assertEquals } from "./support/assert.ts";
import { prng } from "./support/prng.ts";
import { loadFixture, PRE_4090_BACKUP } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { recordedChanges } from "./support/cli_testing.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { V1BackupReader } from "../lib/backends/v1/reader.ts";
import type { BackupReader } from "../lib/backends/backend.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { readLockFile } from "../lib/backup/lock_file.ts";
import { parseBackupUrl } from "../lib/backends/url.ts";
import { readChain } from "../lib/format/chain.ts";
import { scanSegment, SEGMENT_HEADER_SIZE } from "../lib/format/segment.ts";
import { RECORD_HEADER_SIZE } from "../lib/format/record.ts";

const CASES = Number(Deno.env.get("FUZZ_CASES") ?? 50_000);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 9);
/** Changes in the format 3 backup: enough for several sealed logs, few enough to read fast. */
const CHANGES = 20;
/**
 * The most memory this test's isolate may hold (JS heap and buffers) over the run; it keeps a
 * few small backups in memory. Not RSS: `deno test --parallel` runs other test files in the
 * same process.
 */
const MEMORY_BOUND = 512 * 1024 * 1024;

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)];
const below = (random: Random, n: number) => Math.floor(random() * n);

/** True for an error a reader may throw: ours, on one line, saying what failed. */
function isOurs(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const plain = error.constructor === Error ||
    ["CorruptBackupError", "BackupUrlError", "FormatTwoError", "EmptyBackupError"].includes(
      error.name,
    );
  return plain && /^Cannot /.test(error.message) && !error.message.includes("\n");
}

/** Runs `fn`; returns its value, or `undefined` after checking that its error is ours. */
function attempt<T>(what: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    // (The message is built only on failure: a stack trace costs more than the read.)
    if (!isOurs(error)) assert(false, `${what}: not one of our errors: ${(error as Error)?.stack}`);
    return undefined;
  }
}

/** What a reader yields, condensed: the snapshot's size and CRC, one signature per change. */
interface Read {
  snapshotBytes: number;
  snapshotCrc: number;
  changes: string[];
  versions: number[];
  tail: boolean;
}

function readAll(reader: BackupReader): Read {
  const read: Read = { snapshotBytes: 0, snapshotCrc: 0, changes: [], versions: [], tail: false };
  for (const entry of reader.entries()) {
    if (entry.kind === "snapshot-part") {
      read.snapshotBytes += entry.bytes.length;
      read.snapshotCrc = crc32(entry.bytes, read.snapshotCrc);
    } else if (entry.kind === "change") {
      read.changes.push(`${entry.version}:${crc32(entry.statements.join("\0"))}`);
      read.versions.push(entry.version);
    } else if (entry.kind === "tail") {
      read.tail = true;
    }
  }
  return read;
}

/** A directory of files that cases mutate and put back. */
class Workspace {
  readonly pristine = new Map<string, Uint8Array>();

  constructor(readonly dir: string) {
    for (const entry of Deno.readDirSync(dir)) {
      this.pristine.set(entry.name, Deno.readFileSync(`${dir}/${entry.name}`));
    }
  }

  get names(): string[] {
    return [...this.pristine.keys()].filter((n) => n !== "LOCK").sort();
  }

  /** Puts back what a case touched: pristine bytes, or nothing where there was nothing. */
  restore(touched: Iterable<string>): void {
    for (const name of touched) {
      const path = `${this.dir}/${name}`;
      try {
        Deno.removeSync(path, { recursive: true });
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      const bytes = this.pristine.get(name);
      if (bytes) Deno.writeFileSync(path, bytes);
    }
  }
}

/** One mutation: what it did, and what a read of the result may do. */
interface Mutation {
  what: string;
  touched: string[];
  /** Fixes up checksums: only "no crash" can be asserted. */
  forged: boolean;
  /** Cuts the live log at a record boundary: a read may silently stop early. */
  cutAtBoundary: boolean;
}

const ALPHABET = [...'%0aF/:?#[]{}",.\\ \0é\u{1F600}\x7f', "%00", "%E0", "%zz", "\\u0000"];

function mutateBytes(random: Random, bytes: Uint8Array, focus: number): Uint8Array {
  // Mostly near the start, where headers are.
  const at = random() < 0.5
    ? below(random, Math.min(bytes.length, focus))
    : below(random, bytes.length);
  switch (below(random, 6)) {
    case 0: {
      const out = bytes.slice();
      out[at] ^= 1 << below(random, 8);
      return out;
    }
    case 1: {
      const out = bytes.slice();
      out[at] = pick(random, [0, 0xff, 0x7f, 0x80, below(random, 256)]);
      return out;
    }
    case 2:
      return bytes.slice(0, at);
    case 3: {
      const out = bytes.slice();
      out.fill(0, at, at + 1 + below(random, random() < 0.2 ? bytes.length : 64));
      return out;
    }
    case 4: {
      const extra = Uint8Array.from({ length: 1 + below(random, 64) }, () => below(random, 256));
      const out = new Uint8Array(bytes.length + extra.length);
      out.set(bytes.subarray(0, at));
      out.set(extra, at);
      out.set(bytes.subarray(at), at + extra.length);
      return out;
    }
    default: {
      const out = bytes.slice();
      const len = 1 + below(random, 16);
      const from = below(random, bytes.length);
      out.copyWithin(at, from, from + len);
      return out;
    }
  }
}

/** The format 3 backup's layout, as the cases need it. */
interface Built {
  work: Workspace;
  url: string;
  foreign: Workspace;
  /** The live log's name and its record boundaries. */
  live: string;
  boundaries: Set<number>;
  /** Record offsets by segment name, for forged edits. */
  records: Map<string, number[]>;
  truth: Read;
  truthDump: string;
}

function recordOffsets(path: string): number[] {
  const file = Deno.openSync(path, { read: true });
  try {
    const offsets: number[] = [];
    const scan = scanSegment(file, path, { decode: false });
    for (let step = scan.next(); !step.done; step = scan.next()) offsets.push(step.value.offset);
    return offsets;
  } finally {
    file.close();
  }
}

async function buildBackup(root: string, name: string): Promise<string> {
  const path = `${root}/${name}`;
  createFileBackup(path, { version: 11, path: loadFixture("fresh-start").database });
  const backend = FileBackend.open(`file://${path}`, path, { segmentBytes: 1536 });
  const changes = recordedChanges(["restart", "activity"]).filter((c) => c.version > 11);
  for (const change of changes.slice(0, CHANGES)) await backend.append(change);
  backend.close();
  return path;
}

async function build(root: string): Promise<Built> {
  const path = await buildBackup(root, "backup");
  const foreign = new Workspace(await buildBackup(root, "foreign"));
  const url = `file://${path}`;
  const chain = readChain(path);
  const live = chain.logs.at(-1)!.path;
  const records = new Map<string, number[]>();
  for (const segment of [...chain.bases, ...chain.logs]) {
    records.set(segment.path.slice(path.length + 1), recordOffsets(segment.path));
  }
  const liveName = live.slice(path.length + 1);
  const boundaries = new Set([...records.get(liveName)!, Deno.statSync(live).size]);
  boundaries.add(SEGMENT_HEADER_SIZE);
  const truth = readAll(new FileBackupReader(url, path));
  const target = `${root}/truth.sqlite3`;
  restoreBackup(new FileBackupReader(url, path), target);
  const truthDump = dumpDatabase(target);
  Deno.removeSync(target);
  return {
    work: new Workspace(path),
    url,
    foreign,
    live: liveName,
    boundaries,
    records,
    truth,
    truthDump,
  };
}

/** Sets a field of a record or segment header and fixes the header's CRC (and the payload's). */
function forge(random: Random, bytes: Uint8Array, offsets: number[]): Uint8Array {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  if (random() < 0.3 || offsets.length === 0) {
    // The segment header: a field, then its CRC.
    const field = pick(random, [8, 12, 16, 20, 24, 40, 44, 48]);
    view.setUint32(field, pick(random, [0, 1, 2, 3, 4, 0xffffffff, below(random, 2 ** 32)]));
    view.setUint32(SEGMENT_HEADER_SIZE - 4, crc32(out.subarray(0, SEGMENT_HEADER_SIZE - 4)));
    return out;
  }
  const at = pick(random, offsets);
  const field = pick(random, [4, 5, 6, 8, 12, 16, 20, 24, 28]);
  const huge = [0, 1, 12, 0x7fffffff, 0xffffffff, 400 * 1024 * 1024, 256 * 1024 * 1024 + 1];
  if (field < 8) view.setUint8(at + field, pick(random, [0, 1, 2, 3, 4, 5, 255]));
  else view.setUint32(at + field, pick(random, [...huge, below(random, 2 ** 32)]));
  if (random() < 0.3) {
    // And the payload's CRC, so the payload itself is what a reader must survive.
    const stored = view.getUint32(at + 16);
    const end = Math.min(out.length, at + RECORD_HEADER_SIZE + stored);
    view.setUint32(at + 24, crc32(out.subarray(at + RECORD_HEADER_SIZE, end)));
  }
  view.setUint32(at, crc32(out.subarray(at + 4, at + RECORD_HEADER_SIZE)));
  return out;
}

function mutateBackup(random: Random, built: Built): Mutation {
  const { work } = built;
  const names = work.names;
  const name = pick(random, names);
  const path = `${work.dir}/${name}`;
  const bytes = work.pristine.get(name)!;
  const plain = { forged: false, cutAtBoundary: false };
  const kind = below(random, 20);
  if (kind < 12) {
    const out = mutateBytes(random, bytes, 128);
    Deno.writeFileSync(path, out);
    // A cut that lands on a record boundary of the live log (truncation, or zeros from one on
    // are a different story: zeros are reported as a tail).
    const isPrefix = out.length < bytes.length && out.every((b, i) => b === bytes[i]);
    return {
      what: `bytes of ${name}`,
      touched: [name],
      ...plain,
      cutAtBoundary: name === built.live && isPrefix && built.boundaries.has(out.length),
    };
  }
  if (kind < 15) {
    Deno.writeFileSync(path, forge(random, bytes, built.records.get(name) ?? []));
    return {
      what: `forged header of ${name}`,
      touched: [name],
      forged: true,
      cutAtBoundary: false,
    };
  }
  switch (kind) {
    case 15:
      Deno.removeSync(path);
      return { what: `deleted ${name}`, touched: [name], ...plain };
    case 16: {
      // Swap two segments, or copy one under another segment's or a new number's name.
      const other = pick(random, names);
      const to = random() < 0.5
        ? other
        : name.replace(/\d{20}/, (n) => String(Number(n) + 1 + below(random, 3)).padStart(20, "0"));
      Deno.writeFileSync(`${work.dir}/${to}`, bytes);
      if (to === other) Deno.writeFileSync(path, work.pristine.get(other)!);
      return { what: `${name} copied to ${to}`, touched: [name, to], ...plain };
    }
    case 17: {
      const stranger = built.foreign.pristine.get(name);
      if (stranger) Deno.writeFileSync(path, stranger);
      return { what: `${name} from another backup`, touched: [name], ...plain };
    }
    case 18: {
      Deno.removeSync(path);
      if (random() < 0.5) Deno.symlinkSync(`${built.foreign.dir}/${name}`, path);
      else Deno.mkdirSync(path);
      return { what: `${name} replaced by a symlink or directory`, touched: [name], ...plain };
    }
    default: {
      const tmp = `${name}.tmp`;
      Deno.writeFileSync(`${work.dir}/${tmp}`, bytes.subarray(0, below(random, bytes.length)));
      return { what: `a leftover ${tmp}`, touched: [tmp], ...plain };
    }
  }
}

function checkBackupCase(random: Random, built: Built, mutation: Mutation, n: number): string {
  const context = `case ${n} (${mutation.what})`;
  const reader = new FileBackupReader(built.url, built.work.dir);
  const read = attempt(`${context}: entries`, () => readAll(reader));
  const described = attempt(`${context}: describe`, () => reader.describe());
  if (!mutation.forged && read) {
    const { truth } = built;
    assertEquals(
      [read.snapshotBytes, read.snapshotCrc],
      [truth.snapshotBytes, truth.snapshotCrc],
      `${context}: snapshot`,
    );
    assertEquals(read.changes, truth.changes.slice(0, read.changes.length), `${context}: changes`);
    if (read.changes.length < truth.changes.length) {
      assert(read.tail || mutation.cutAtBoundary, `${context}: stopped early without saying so`);
    }
    if (described) assertEquals(described.lastVersion, read.versions.at(-1) ?? 11, context);
  }
  if (n % 4 === 0) {
    const backend = attempt(`${context}: open`, () => FileBackend.open(built.url, built.work.dir));
    if (backend) {
      const state = backend.state();
      backend.close();
      if (!mutation.forged && read) {
        assertEquals(state.version, read.versions.at(-1) ?? 11, `${context}: writer version`);
        assertEquals(state.tail !== undefined, read.tail, `${context}: writer tail`);
      }
    }
  }
  if (read && !mutation.forged && (n % 500 === 0 || random() < 0.002)) {
    const target = `${built.work.dir}/../restored.sqlite3`;
    const result = attempt(`${context}: restore`, () => restoreBackup(reader, target));
    if (result) {
      Deno.removeSync(target);
      assertEquals(result.version, read.versions.at(-1) ?? 11, `${context}: restored version`);
      assertEquals(result.tail !== undefined, read.tail, `${context}: restore's tail`);
      return read.changes.length === built.truth.changes.length ? "restored whole" : "restored";
    }
    return "restore refused";
  }
  return read
    ? (read.changes.length < built.truth.changes.length ? "read short" : "read")
    : "refused";
}

function checkV1Case(random: Random, work: Workspace, path: string, n: number): string {
  const name = work.names[0];
  const bytes = work.pristine.get(name)!;
  let out: Uint8Array;
  if (random() < 0.3) {
    // A header field, anywhere in its 36 bytes.
    out = bytes.slice();
    new DataView(out.buffer).setUint32(
      4 * below(random, 9),
      pick(random, [0, 1, 45, 46, 47, 0x7fffffff, 0xffffffff, below(random, 2 ** 32)]),
    );
  } else {
    out = mutateBytes(random, bytes, 4096);
  }
  Deno.writeFileSync(path, out);
  const reader = new V1BackupReader(`file://${path}`, path);
  const read = attempt(`v1 case ${n}: entries`, () => readAll(reader));
  attempt(`v1 case ${n}: describe`, () => reader.describe());
  if (read && n % 100 === 0) {
    const target = `${path}.restored`;
    if (attempt(`v1 case ${n}: restore`, () => restoreBackup(reader, target))) {
      Deno.removeSync(target);
    }
  }
  work.restore([name]);
  return read ? "read" : "refused";
}

function mutateText(random: Random, text: string): string {
  const chars = [...text];
  for (let i = 0, edits = 1 + below(random, 3); i < edits; i++) {
    const at = below(random, chars.length + 1);
    switch (below(random, 3)) {
      case 0:
        chars.splice(at, 1);
        break;
      case 1:
        chars.splice(at, 0, pick(random, ALPHABET));
        break;
      default:
        chars[at] = pick(random, ALPHABET);
    }
  }
  return chars.join("");
}

const URLS = [
  "file:///var/backups/node1",
  "file:///var/backups/node%201.clnb",
  "socket:127.0.0.1:9000",
  "socket:[::1]:9000?proxy=socks5:127.0.0.1:9050",
];

function checkUrlCase(random: Random, n: number): string {
  const url = mutateText(random, pick(random, URLS));
  const parsed = attempt(`url case ${n}: ${JSON.stringify(url)}`, () => parseBackupUrl(url));
  if (parsed?.scheme === "file") {
    assert(!parsed.path.includes("\0"), `url case ${n}: a NUL in the path of ${url}`);
  }
  return parsed ? "parsed" : "refused";
}

function checkLockCase(random: Random, dir: string, n: number): string {
  const text = mutateText(random, JSON.stringify({ backend_url: pick(random, URLS), keep: [1] }));
  Deno.writeTextFileSync(`${dir}/backup.lock`, text);
  const lock = attempt(`lock case ${n}: ${JSON.stringify(text)}`, () => readLockFile(dir));
  if (lock) attempt(`lock case ${n}: its URL`, () => parseBackupUrl(lock.backend_url));
  return lock ? "read" : "refused";
}

Deno.test(`readers survive ${CASES} seeded mutations and never return a wrong state`, async () => {
  const root = Deno.makeTempDirSync({
    prefix: "cln-backup-fuzz-",
    dir: Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined,
  });
  try {
    const built = await build(root);
    const v1Dir = `${root}/v1`;
    Deno.mkdirSync(v1Dir);
    Deno.copyFileSync(PRE_4090_BACKUP, `${v1Dir}/backup.dbak`);
    const v1 = new Workspace(v1Dir);
    const lockDir = `${root}/lock`;
    Deno.mkdirSync(lockDir);
    // The truth is right: a restore of the intact backup is the recorded run's database.
    assert(built.truth.changes.length === CHANGES && !built.truth.tail);
    assert(built.truthDump.length > 0);

    const random = prng(SEED);
    const outcomes = new Map<string, number>();
    const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
    let maxMemory = 0;
    const started = performance.now();
    for (let n = 1; n <= CASES; n++) {
      const lane = random();
      if (lane < 0.8) {
        const mutation = mutateBackup(random, built);
        try {
          count(`backup: ${checkBackupCase(random, built, mutation, n)}`);
        } finally {
          built.work.restore(mutation.touched);
        }
      } else if (lane < 0.9) {
        count(`v1: ${checkV1Case(random, v1, `${v1Dir}/backup.dbak`, n)}`);
      } else if (lane < 0.95) {
        count(`backup.lock: ${checkLockCase(random, lockDir, n)}`);
      } else {
        count(`url: ${checkUrlCase(random, n)}`);
      }
      if (n % 500 === 0) {
        const { heapUsed, external } = Deno.memoryUsage();
        maxMemory = Math.max(maxMemory, heapUsed + external);
      }
    }
    // Every case put its files back: the backup reads whole again.
    assertEquals(readAll(new FileBackupReader(built.url, built.work.dir)), built.truth);
    console.log(
      `${CASES} cases (seed ${SEED}) in ${Math.round(performance.now() - started)} ms, ` +
        `at most ${Math.round(maxMemory / 2 ** 20)} MiB of heap and buffers:\n` +
        [...outcomes].sort().map(([what, n]) => `  ${what}: ${n}`).join("\n"),
    );
    assert(maxMemory < MEMORY_BOUND, `heap and buffers reached ${maxMemory} bytes`);
    // The mutations reached every outcome that matters.
    for (const what of ["backup: refused", "backup: read short", "backup: restored whole"]) {
      assert((outcomes.get(what) ?? 0) > 0, `no case ended "${what}"`);
    }
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
