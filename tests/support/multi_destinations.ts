/**
 * A node whose backup has several destinations, a file backup and an S3 one (Ceph RGW), run
 * by the fake lightningd over the recorded runs: the shared set-up of the tests of their
 * compaction.
 *
 * @module
 */
import { assert, assertEquals } from "./assert.ts";
import { FakeLightningd } from "./fake_lightningd.ts";
import { loadFixture, SCENARIOS } from "./fixtures.ts";
import { recordedChanges } from "./cli_testing.ts";
import { dumpDatabase } from "./dump.ts";
import { restoredDump } from "./restored.ts";
import { type Rgw, writeCredentials } from "./rgw.ts";
import { sharedRgw } from "./shared_rgw.ts";
import { type LockFile, writeLockFile } from "../../lib/backup/lock_file.ts";
import { createFileBackup } from "../../lib/backends/file/create.ts";
import { createS3Backup } from "../../lib/backends/s3/create.ts";
import { S3BackupReader } from "../../lib/backends/s3/reader.ts";
import { restoreBackup } from "../../lib/backup/restore.ts";
import type { Change } from "../../lib/backends/backend.ts";

/** Small segments and packs, so that the recorded runs roll, pack and have much to compact. */
const ENV = {
  AWS_ACCESS_KEY_ID: "",
  CLN_BACKUP_TEST_SEGMENT_BYTES: String(32 * 1024),
  CLN_BACKUP_TEST_S3_PACK_EVERY: "20",
};
const PATIENCE = { s3_timeout_s: 5, s3_retries: 2, s3_retry_delay_s: 0.05, async_retry_s: 0.5 };

export const ACTIVITY: Change[] = recordedChanges(["activity"]);
/** Every change of the recorded runs, in order: the truth restores are held to. */
export const RECORDED: Change[] = recordedChanges(SCENARIOS);

export interface Node {
  s: Rgw;
  root: string;
  dir: string;
  file: string;
  s3: string;
  /** The other destination, as a mirror or as an async copy. */
  urls: string[];
  spawned: FakeLightningd[];
}

export async function withNode(
  lock: (
    file: string,
    s3: string,
    root: string,
  ) => { mirror_urls?: string[]; async_urls?: string[] },
  fn: (node: Node) => Promise<void>,
): Promise<void> {
  const s = sharedRgw({ exportKeys: true });
  const root = Deno.makeTempDirSync({ prefix: "multi-compact-" });
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  writeCredentials(dir, s.credentials);
  const file = `file://${root}/backup`;
  createFileBackup(`${root}/backup`);
  const s3 = s.url(await s.bucket());
  await createS3Backup(s3, s.credentials);
  const destinations = lock(file, s3, root);
  const full: LockFile = { backend_url: file, ...PATIENCE, ...destinations };
  writeLockFile(dir, full);
  const urls = [file, ...destinations.mirror_urls ?? [], ...destinations.async_urls ?? []];
  for (const url of urls.slice(1)) {
    if (url.startsWith("file://")) createFileBackup(url.slice("file://".length));
  }
  const node: Node = { s, root, dir, file, s3, urls, spawned: [] };
  try {
    await fn(node);
  } finally {
    for (const lightningd of node.spawned) await lightningd.kill().catch(() => {});
    Deno.removeSync(root, { recursive: true });
  }
}

export function spawn(node: Node, env: Record<string, string> = {}): FakeLightningd {
  const lightningd = FakeLightningd.spawn({ lightningDir: node.dir, env: { ...ENV, ...env } });
  lightningd.volatileCommits();
  node.spawned.push(lightningd);
  return lightningd;
}

/** fresh-start and restart as recorded. */
export async function firstRuns(node: Node): Promise<void> {
  for (const name of ["fresh-start", "restart"] as const) {
    const lightningd = spawn(node);
    assertEquals(await lightningd.replay(loadFixture(name).raw), "committed", lightningd.aborted);
    await lightningd.close();
  }
}

export type Json = Record<string, unknown>;
export type DestinationStatus = Json & { url: string; running: Json | null; last: Json | null };

export async function compaction(lightningd: FakeLightningd): Promise<Json> {
  const answer = await lightningd.request("backup-status", []);
  return (answer.result as Json).compaction as Json;
}

/**
 * Waits until no compaction runs (the hooks start them), checking meanwhile that never two
 * destinations compact at once.
 */
export async function settled(lightningd: FakeLightningd): Promise<DestinationStatus[]> {
  for (;;) {
    const destinations = (await compaction(lightningd)).destinations as DestinationStatus[];
    const running = destinations.filter((d) => d.running !== null);
    assert(running.length <= 1, `two compactions at once: ${JSON.stringify(running)}`);
    if (running.length === 0) return destinations;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until every async copy holds every change. */
export async function caughtUp(lightningd: FakeLightningd): Promise<void> {
  let copies: Json[] = [];
  for (let i = 0; i < 600; i++) {
    const status = (await lightningd.request("backup-status", [])).result as Json;
    copies = (status.async_destinations ?? []) as Json[];
    if (copies.every((c) => c.state === "caught-up")) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the async copies never caught up: ${JSON.stringify(copies)}`);
}

/** The dump of the backup at `url` restored, to `toVersion` when given. */
export async function restored(node: Node, url: string, toVersion?: number): Promise<string> {
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

export async function write(lightningd: FakeLightningd, change: Change): Promise<void> {
  const outcome = await lightningd.dbWrite(change.version, [...change.statements]);
  assertEquals(outcome, "committed", lightningd.aborted);
}
