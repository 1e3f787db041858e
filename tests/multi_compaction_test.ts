/**
 * Compaction of a backup with several destinations, with the real plugin under the fake
 * lightningd over the recorded runs, into a file backup and an S3 one (Ceph RGW), as a mirror
 * (`mirror_urls`) and as an async copy (`async_urls`): compacted by itself and on request
 * while the node commits, one destination at a time, each restoring equal to the node and to
 * a past version still held; a plugin killed (SIGKILL) in the middle of each destination's
 * compaction loses nothing.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { DATABASE_NAME, FakeLightningd, splitMessages } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { dumpAt } from "./support/node_at.ts";
import { restoredDump } from "./support/restored.ts";
import {
  type Rgw,
  rgwMissing,
  sharedRgw,
  stopSharedRgwLast,
  writeCredentials,
} from "./support/rgw.ts";
import { type LockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import type { Change } from "../lib/backends/backend.ts";

/** Small segments and packs, so that the recorded runs roll, pack and have much to compact. */
const ENV = {
  AWS_ACCESS_KEY_ID: "",
  CLN_BACKUP_TEST_SEGMENT_BYTES: String(32 * 1024),
  CLN_BACKUP_TEST_S3_PACK_EVERY: "20",
};
const PATIENCE = { s3_timeout_s: 5, s3_retries: 2, s3_retry_delay_s: 0.05, async_retry_s: 0.5 };

/** The db_writes of a recorded run, as changes. */
const changesOf = (name: "fresh-start" | "restart" | "activity"): Change[] =>
  splitMessages(loadFixture(name).raw)
    .filter((m) => m.json.method === "db_write")
    .map((m) => ({ version: m.json.params.data_version, statements: m.json.params.writes }));
const ACTIVITY = changesOf("activity");
/** Every change of the recorded runs, in order: the truth restores are held to. */
const RECORDED = [...changesOf("fresh-start"), ...changesOf("restart"), ...ACTIVITY];

interface Node {
  s: Rgw;
  root: string;
  dir: string;
  file: string;
  s3: string;
  /** The other destination, as a mirror or as an async copy. */
  urls: string[];
  spawned: FakeLightningd[];
}

async function withNode(
  lock: (file: string, s3: string) => { mirror_urls?: string[]; async_urls?: string[] },
  fn: (node: Node) => Promise<void>,
): Promise<void> {
  const s = await sharedRgw({ exportKeys: true });
  const root = Deno.makeTempDirSync({ prefix: "multi-compact-" });
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  writeCredentials(dir, s.credentials);
  const file = `file://${root}/backup`;
  createFileBackup(`${root}/backup`);
  const s3 = s.url(await s.bucket());
  await createS3Backup(s3, s.credentials);
  const destinations = lock(file, s3);
  const full: LockFile = { backend_url: file, ...PATIENCE, ...destinations };
  writeLockFile(dir, full);
  const urls = [file, ...destinations.mirror_urls ?? [], ...destinations.async_urls ?? []];
  const node: Node = { s, root, dir, file, s3, urls, spawned: [] };
  try {
    await fn(node);
  } finally {
    for (const lightningd of node.spawned) await lightningd.kill().catch(() => {});
    Deno.removeSync(root, { recursive: true });
  }
}

function spawn(node: Node): FakeLightningd {
  const lightningd = FakeLightningd.spawn({ lightningDir: node.dir, env: ENV });
  lightningd.db.exec("PRAGMA synchronous = OFF");
  node.spawned.push(lightningd);
  return lightningd;
}

/** fresh-start and restart as recorded. */
async function firstRuns(node: Node): Promise<void> {
  for (const name of ["fresh-start", "restart"] as const) {
    const lightningd = spawn(node);
    assertEquals(await lightningd.replay(loadFixture(name).raw), "committed", lightningd.aborted);
    await lightningd.close();
  }
}

type Json = Record<string, unknown>;
type DestinationStatus = Json & { url: string; running: Json | null; last: Json | null };

async function compaction(lightningd: FakeLightningd): Promise<Json> {
  const answer = await lightningd.request("backup-status", []);
  return (answer.result as Json).compaction as Json;
}

/**
 * Waits until no compaction runs (the hooks start them), checking meanwhile that never two
 * destinations compact at once.
 */
async function settled(lightningd: FakeLightningd): Promise<DestinationStatus[]> {
  for (;;) {
    const destinations = (await compaction(lightningd)).destinations as DestinationStatus[];
    const running = destinations.filter((d) => d.running !== null);
    assert(running.length <= 1, `two compactions at once: ${JSON.stringify(running)}`);
    if (running.length === 0) return destinations;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until every async copy holds every change. */
async function caughtUp(lightningd: FakeLightningd): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const status = (await lightningd.request("backup-status", [])).result as Json;
    const copies = (status.async_destinations ?? []) as Json[];
    if (copies.every((c) => c.state === "caught-up")) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the async copies never caught up");
}

/** The dump of the backup at `url` restored, to `toVersion` when given. */
async function restored(node: Node, url: string, toVersion?: number): Promise<string> {
  if (!url.startsWith("s3://")) return restoredDump(url, node.root, toVersion);
  const reader = await S3BackupReader.fetch(url, node.s.credentials);
  try {
    const target = `${node.root}/restored-${crypto.randomUUID()}.sqlite3`;
    restoreBackup(reader, target, { toVersion });
    const dump = dumpDatabase(target);
    Deno.removeSync(target);
    return dump;
  } finally {
    reader.close();
  }
}

async function write(lightningd: FakeLightningd, change: Change): Promise<void> {
  const outcome = await lightningd.dbWrite(change.version, [...change.statements]);
  assertEquals(outcome, "committed", lightningd.aborted);
}

/**
 * The activity run with automatic compaction in its first half, `backup-compact` asked every
 * 60 hooks in its second (each overlapping the hooks that follow); then every destination
 * restores equal to the node, and to a version after the last compaction.
 */
async function compactingRun(node: Node): Promise<void> {
  await firstRuns(node);
  const lightningd = spawn(node);
  await lightningd.getmanifest();
  const half = Math.floor(ACTIVITY.length / 2);
  for (const change of ACTIVITY.slice(0, 3)) await write(lightningd, change);
  await lightningd.init({ "backup-compact-min-mib": 0, "backup-compact-ratio": 20 });
  for (const [i, change] of ACTIVITY.slice(3, half).entries()) {
    await write(lightningd, change);
    if (i % 40 === 39) await settled(lightningd);
  }
  const auto = await settled(lightningd);
  assertEquals(auto.map((d) => d.url), node.urls);
  for (const destination of auto) {
    assertEquals(destination.last?.ok, true, `${destination.url}: ${JSON.stringify(destination)}`);
    assert(typeof destination.next_due_at_bytes === "number", "the next one is due by size");
  }
  const byItself = lightningd.logs.filter((l) => l.message.startsWith("compacted the backup by"));
  assert(byItself.length > 0, "the plugin compacted by itself");

  await lightningd.request("setconfig", { config: "backup-compact-auto", val: "false" });
  const results: Json[] = [];
  let pending: Promise<Json> | undefined;
  let overlapped = 0;
  const twice: unknown[][] = [];
  const rest = ACTIVITY.slice(half, -20);
  for (const [i, change] of rest.entries()) {
    if (i % 60 === 10) {
      if (pending) results.push(await pending);
      // A second call while it runs joins it.
      const [a, b] = [
        lightningd.request("backup-compact", []),
        lightningd.request("backup-compact", []),
      ];
      pending = Promise.all([a, b]).then(([x, y]) => {
        twice.push([x.result, y.result]);
        return x;
      });
    }
    let answered = false;
    pending?.then(() => answered = true);
    await write(lightningd, change);
    if (pending && !answered) overlapped++;
  }
  if (pending) results.push(await pending);
  assert(results.length >= 3, `${results.length} compactions`);
  for (const [x, y] of twice) assertEquals(x, y, "a second call joins the running one");
  assert(overlapped > 0, "hooks were answered while a compaction ran");
  for (const answer of results) {
    assert(answer.result, `backup-compact failed: ${JSON.stringify(answer.error)}`);
    const result = answer.result as Json;
    assertEquals(Object.keys(result).slice(0, 2), ["before", "after"]);
    const destinations = result.destinations as Json[];
    assertEquals(destinations.map((d) => d.url), node.urls);
    for (const d of destinations) assertEquals(d.error, null, `${d.url}: ${d.error}`);
    const { destinations: _, ...primary } = result;
    assertEquals(destinations[0].result, primary, "the fields are the primary's");
  }
  // A version after the last compaction, still held by every destination.
  const past = ACTIVITY.at(-20)!.version;
  for (const change of ACTIVITY.slice(-20)) await write(lightningd, change);
  await caughtUp(lightningd);
  await settled(lightningd);
  assertEquals((await lightningd.stop()).code, 0);

  const now = dumpDatabase(`${node.dir}/${DATABASE_NAME}`);
  assertEquals(now, dumpAt(RECORDED, ACTIVITY.at(-1)!.version));
  const then = dumpAt(RECORDED, past);
  for (const url of node.urls) {
    assertEquals(await restored(node, url), now, url);
    assertEquals(await restored(node, url, past), then, `${url} at ${past}`);
  }
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: rgwMissing !== undefined, fn });

test("file and S3 mirrors: compacted by themselves and on request while the node commits; restores equal", async () => {
  await withNode((_, s3) => ({ mirror_urls: [s3] }), compactingRun);
});

test("file primary and async S3 copy: both compacted while the node commits; restores equal", async () => {
  await withNode((_, s3) => ({ async_urls: [s3] }), compactingRun);
});

stopSharedRgwLast();
