/**
 * Asynchronous destinations (backup.lock's `async_urls`) with the real plugin under the fake
 * lightningd, a file primary, and file and S3 (Ceph RGW) copies: the copies catch up and
 * restore equal to the node; an S3 copy that is down never stops the node, its lag shows in
 * `backup-status`, and it catches up when back; a plugin killed (SIGKILL) while a copy is
 * behind, or after a copy took a change the node never committed, catches up at the next
 * start with nothing lost or doubled (a restore refuses a gap or a change stored twice).
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { SlowdownProxy } from "./support/slowdown_proxy.ts";
import { writeCredentials } from "./support/rgw.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { type LockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import type { AsyncDestinationStatus } from "../lib/backends/backend.ts";
import { BufferedOutput } from "./support/cli_testing.ts";
import { restore } from "../lib/cli/restore.ts";
import { bumpStatement } from "./support/statements.ts";

const SCHEMA = [
  "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name))",
  "INSERT INTO vars (name, intval) VALUES ('data_version', 0)",
  "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)",
];
const PATIENCE = {
  s3_timeout_s: 1,
  s3_retries: 1,
  s3_retry_delay_s: 0.02,
  async_retry_s: 0.5,
};

interface Node {
  root: string;
  dir: string;
  /** The primary, a file backup. */
  file: string;
  /** An async file copy. */
  copy: string;
  /** An async S3 copy, through a proxy that refuses every request while `down`. */
  s3: string;
  proxy: SlowdownProxy;
  /** Starts the plugin with these async destinations and runs transactions. */
  run(asyncUrls: string[], transactions: string[][]): Promise<FakeLightningd>;
}

async function withNode(fn: (node: Node) => Promise<void>): Promise<void> {
  const s = sharedRgw({ exportKeys: true });
  const root = Deno.makeTempDirSync({ prefix: "s3-async-" });
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  writeCredentials(dir, s.credentials);
  createFileBackup(`${root}/backup`);
  createFileBackup(`${root}/copy`);
  const bucket = await s.bucket();
  await createS3Backup(s.url(bucket), s.credentials);
  const proxy = new SlowdownProxy(s.port, () => false);
  const spawned: FakeLightningd[] = [];
  const file = `file://${root}/backup`;
  const run = async (asyncUrls: string[], transactions: string[][]) => {
    const lock: LockFile = { backend_url: file, async_urls: asyncUrls, ...PATIENCE };
    writeLockFile(dir, lock);
    const lightningd = FakeLightningd.spawn({ lightningDir: dir, env: { AWS_ACCESS_KEY_ID: "" } });
    spawned.push(lightningd);
    await lightningd.getmanifest();
    for (const statements of transactions) {
      assertEquals(await lightningd.transaction(statements), "committed", lightningd.aborted);
    }
    return lightningd;
  };
  try {
    await fn({
      root,
      dir,
      file,
      copy: `file://${root}/copy`,
      s3: s.url(bucket, "node", proxy.port),
      proxy,
      run,
    });
  } finally {
    for (const lightningd of spawned) await lightningd.kill().catch(() => {});
    await proxy.close();
    Deno.removeSync(root, { recursive: true });
  }
}

const notes = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => [`INSERT INTO notes (note) VALUES ('n${from + i}')`]);

async function asyncStatus(lightningd: FakeLightningd): Promise<AsyncDestinationStatus[]> {
  const status = (await lightningd.request("backup-status", {})).result as Record<string, unknown>;
  return status.async_destinations as AsyncDestinationStatus[];
}

/** Polls `backup-status` until `url`'s copy fits `wanted` (at most 20 s). */
async function waitFor(
  lightningd: FakeLightningd,
  url: string,
  wanted: (s: AsyncDestinationStatus) => boolean,
): Promise<AsyncDestinationStatus> {
  let last: AsyncDestinationStatus | undefined;
  for (let i = 0; i < 400; i++) {
    last = (await asyncStatus(lightningd)).find((s) => s.url === url);
    if (last && wanted(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} never got there: ${JSON.stringify(last)}`);
}

const caughtUp = (version: number) => (s: AsyncDestinationStatus) =>
  s.state === "caught-up" && s.version === version && s.lag_versions === 0;

/** Restores `url` alone into `<root>/<name>` and returns its dump. */
async function restored(root: string, name: string, url: string): Promise<string> {
  const output = new BufferedOutput();
  assertEquals(await restore([url, `${root}/${name}`], output), 0, output.transcript);
  return dumpDatabase(`${root}/${name}`);
}

/**
 * Restores each URL of `urls` alone into `<root>/<name>`, checks each equals the node's
 * database, and returns the node's dump.
 */
async function restoresEqualNode(
  { root, dir }: Pick<Node, "root" | "dir">,
  urls: Record<string, string>,
): Promise<string> {
  const node = dumpDatabase(`${dir}/lightningd.sqlite3`);
  for (const [name, url] of Object.entries(urls)) {
    assertEquals(await restored(root, name, url), node);
  }
  return node;
}

/**
 * Runs the node to version 6 with both copies, then has the plugin store (and copy) a change 7
 * the node never commits, as when lightningd stops, and kills the plugin.
 */
async function storeUncommitted(
  { copy, s3, run }: Pick<Node, "copy" | "s3" | "run">,
): Promise<void> {
  const first = await run([copy, s3], [SCHEMA, ...notes(0, 5)]);
  const stored = await first.request("db_write", {
    data_version: 7,
    writes: ["INSERT INTO notes (note) VALUES ('never')", bumpStatement(6)],
  });
  assertEquals((stored.result as Record<string, unknown>).result, "continue");
  for (const url of [copy, s3]) await waitFor(first, url, caughtUp(7));
  await first.kill();
}

/** Starts the plugin again with S3 refusing every PUT, and runs the node on to 9. */
async function restartS3Failing(
  { copy, s3, proxy, run }: Pick<Node, "copy" | "s3" | "proxy" | "run">,
): Promise<FakeLightningd> {
  proxy.refuse = (line) => line.startsWith("PUT");
  const second = await run([copy, s3], notes(5, 3));
  await waitFor(second, copy, caughtUp(9));
  await waitFor(second, s3, (s) => s.state === "failing");
  return second;
}

/** Checks the node holds no uncommitted change and both copies restore equal to it. */
async function droppedUncommitted(
  { root, dir, copy, s3 }: Pick<Node, "root" | "dir" | "copy" | "s3">,
): Promise<void> {
  const node = await restoresEqualNode({ root, dir }, { "from-copy": copy, "from-s3": s3 });
  assert(!node.includes("never"));
}

const test = rgwTest;

test("async file and S3 copies catch up with the primary and restore equal to the node", async () => {
  await withNode(async ({ root, dir, copy, s3, run }) => {
    const lightningd = await run([copy, s3], [SCHEMA, ...notes(0, 30)]);
    for (const url of [copy, s3]) {
      const status = await waitFor(lightningd, url, caughtUp(31));
      assertEquals([status.lag_seconds, status.error], [0, null]);
    }
    assertEquals((await lightningd.stop()).code, 0);
    await restoresEqualNode({ root, dir }, { "from-copy": copy, "from-s3": s3 });
  });
});

test("an S3 copy that is down never stops the node; its lag shows, and it catches up", async () => {
  await withNode(async ({ root, dir, s3, proxy, run }) => {
    const lightningd = await run([s3], [SCHEMA, ...notes(0, 3)]);
    await waitFor(lightningd, s3, caughtUp(4));
    proxy.refuse = () => true;
    for (const statements of notes(3, 20)) {
      assertEquals(await lightningd.transaction(statements), "committed");
    }
    const down = await waitFor(lightningd, s3, (s) => s.state === "failing");
    assertMatch(down.error ?? "", /503|SlowDown/);
    assert(down.lag_seconds > 0, JSON.stringify(down));
    // Down, it still knows what it stored: version 4, while the primary went on to 24.
    assertEquals([down.version, down.lag_versions], [4, 20], JSON.stringify(down));
    const status = (await lightningd.request("backup-status", {})).result as { version: number };
    assertEquals(status.version, 24);
    assert(
      lightningd.logs.some((l) =>
        /^Async destination s3:\/\/.* failed, the node goes on/.test(l.message)
      ),
      JSON.stringify(lightningd.logs),
    );
    proxy.refuse = () => false;
    await waitFor(lightningd, s3, caughtUp(24));
    assertEquals((await lightningd.stop()).code, 0);
    await restoresEqualNode({ root, dir }, { "from-s3": s3 });
  });
});

test("SIGKILL while the S3 copy is behind, mid catch-up: the next start catches it up", async () => {
  await withNode(async ({ root, dir, copy, s3, proxy, run }) => {
    proxy.refuse = () => true;
    const first = await run([s3, copy], [SCHEMA, ...notes(0, 60)]);
    await waitFor(first, copy, caughtUp(61));
    await waitFor(first, s3, (s) => s.state === "failing");
    // Every other PUT refused once (a retry stores it): the copy catches up slowly; kill it
    // half way.
    let puts = 0;
    proxy.refuse = (line) => line.startsWith("PUT") && ++puts % 2 === 0;
    const midway = await waitFor(first, s3, (s) => s.version !== null && s.version > 1);
    await first.kill();
    assert(midway.version! < 61, JSON.stringify(midway));
    proxy.refuse = () => false;
    const second = await run([s3, copy], notes(60, 5));
    for (const url of [s3, copy]) await waitFor(second, url, caughtUp(66));
    assertEquals((await second.stop()).code, 0);
    // A restore refuses a gap or a change stored twice.
    await restoresEqualNode({ root, dir }, { "from-s3": s3, "from-copy": copy });
  });
});

test("a copy that took a change the node never committed drops it at the next start", async () => {
  await withNode(async (node) => {
    const { copy, s3, run } = node;
    await storeUncommitted(node);
    // The node is at 6: the primary drops change 7 and stores another change 7.
    const second = await run([copy, s3], notes(5, 3));
    for (const url of [copy, s3]) await waitFor(second, url, caughtUp(9));
    assertEquals((await second.stop()).code, 0);
    await droppedUncommitted(node);
  });
});

test("an S3 copy that fails after dropping a change the node never committed drops it again when reopened", async () => {
  await withNode(async (node) => {
    const { s3, proxy } = node;
    await storeUncommitted(node);
    // The S3 copy opens (a listing), drops change 7 (on S3 only in the writer's memory: a
    // rewind stores nothing), then fails storing the node's change 7 in its place: it is
    // closed and opened again, and the listing shows the dropped change as the newest.
    const second = await restartS3Failing(node);
    proxy.refuse = () => false;
    await waitFor(second, s3, caughtUp(9));
    assertEquals((await second.stop()).code, 0);
    await droppedUncommitted(node);
  });
});

test("the plugin stopped while an S3 copy's drop of a change the node never committed is not stored yet: the next start drops it", async () => {
  await withNode(async (node) => {
    const { copy, s3, proxy, run } = node;
    await storeUncommitted(node);
    // The S3 copy drops change 7 in its writer's memory, then stores nothing before the
    // plugin stops: the bucket still shows the dropped change as the newest.
    const second = await restartS3Failing(node);
    assertEquals((await second.stop()).code, 0);
    proxy.refuse = () => false;
    const third = await run([copy, s3], notes(8, 2));
    for (const url of [copy, s3]) await waitFor(third, url, caughtUp(11));
    assertEquals((await third.stop()).code, 0);
    await droppedUncommitted(node);
  });
});
