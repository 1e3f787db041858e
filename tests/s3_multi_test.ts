/**
 * Several destinations at once, a file backup and an S3 one (Ceph RGW), with the real plugin
 * under the fake lightningd: every change in both; an S3 that refuses stops the node by
 * default, and the next start brings the file copy back to S3's (one ahead, rewound); with
 * `mirror_failure: "degrade"` the node goes on with a BROKEN line and an alarm; destinations
 * that disagree refuse the node; `restore --also` picks the newest copy, says which, and
 * refuses a copy that may be lagging without `--accept-older`.
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
import { BufferedOutput } from "./support/cli_testing.ts";
import { restore } from "../lib/cli/restore.ts";
import { bumpStatement } from "./support/statements.ts";

const SCHEMA = [
  "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name))",
  "INSERT INTO vars (name, intval) VALUES ('data_version', 0)",
  // As lightningd at its first start: restore --also compares the copies' node ids.
  `INSERT INTO vars (name, blobval) VALUES ('node_id', x'02${"ab".repeat(32)}')`,
  "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)",
];
const PATIENCE = { s3_timeout_s: 1, s3_retries: 1, s3_retry_delay_s: 0.02 };

interface Node {
  root: string;
  dir: string;
  bucket: string;
  file: string;
  /** The S3 copy, straight to RGW. */
  s3: string;
  /** Runs transactions until one is not committed; returns the lightningd. */
  run(lock: Partial<LockFile>, transactions: string[][]): Promise<FakeLightningd>;
}

/** A lightning dir, an empty file backup and an empty S3 backup. */
async function withNode(fn: (node: Node) => Promise<void>): Promise<void> {
  const s = sharedRgw({ exportKeys: true });
  const root = Deno.makeTempDirSync({ prefix: "s3-multi-" });
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  writeCredentials(dir, s.credentials);
  const file = `file://${root}/backup`;
  createFileBackup(`${root}/backup`);
  const bucket = await s.bucket();
  const s3 = s.url(bucket);
  await createS3Backup(s3, s.credentials);
  const spawned: FakeLightningd[] = [];
  const run = async (lock: Partial<LockFile>, transactions: string[][]) => {
    writeLockFile(dir, { backend_url: file, mirror_urls: [s3], ...PATIENCE, ...lock });
    const lightningd = FakeLightningd.spawn({
      lightningDir: dir,
      env: { AWS_ACCESS_KEY_ID: "" },
    });
    spawned.push(lightningd);
    await lightningd.getmanifest();
    await lightningd.commitEach(transactions);
    return lightningd;
  };
  try {
    await fn({ root, dir, bucket, file, s3, run });
  } finally {
    for (const lightningd of spawned) await lightningd.kill().catch(() => {});
    Deno.removeSync(root, { recursive: true });
  }
}

const notes = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => [`INSERT INTO notes (note) VALUES ('n${from + i}')`]);

async function restored(root: string, name: string, args: string[]): Promise<BufferedOutput> {
  const output = new BufferedOutput();
  assertEquals(
    await restore([...args.slice(0, 1), `${root}/${name}`, ...args.slice(1)], output),
    0,
    output.text,
  );
  return output;
}

const test = rgwTest;

test("each change goes to the file and S3; restore --also picks the newest and says which", async () => {
  await withNode(async ({ root, dir, file, s3, run }) => {
    const lightningd = await run({}, [SCHEMA, ...notes(0, 5)]);
    const status = (await lightningd.request("backup-status", {})).result as Record<
      string,
      unknown
    >;
    const destinations = status.destinations as { url: string; version: number; state: string }[];
    assertEquals(destinations.map((d) => [d.url, d.version, d.state]), [
      [file, 6, "ok"],
      [s3, 6, "ok"],
    ]);
    assertEquals(status.alarm, null);
    assertEquals((await lightningd.stop()).code, 0);
    const node = dumpDatabase(`${dir}/lightningd.sqlite3`);
    for (const [name, url] of [["from-file", file], ["from-s3", s3]]) {
      await restored(root, name, [url]);
      assertEquals(dumpDatabase(`${root}/${name}`), node, name);
    }
    const output = await restored(root, "from-both", [s3, "--also", file]);
    assertMatch(output.stdout[0], /^Restored ".*" at version 6: .*, from s3:\/\//);
    assertMatch(output.stdout[1], /^The other copies: file:\/\/.* at 6$/);
    assertEquals(dumpDatabase(`${root}/from-both`), node);
  });
});

test("S3 refusing stops the node; the next start rewinds the file copy back to S3's", async () => {
  await withNode(async ({ root, dir, bucket, file, s3, run }) => {
    const s = sharedRgw({ exportKeys: true });
    let puts = 0;
    const proxy = new SlowdownProxy(s.port, (line) => line.startsWith("PUT") && ++puts > 3);
    try {
      const through = s.url(bucket, "node", proxy.port);
      writeLockFile(dir, { backend_url: file });
      const first = await run({ mirror_urls: [through] }, [SCHEMA, ...notes(0, 5)]);
      assertMatch(first.aborted ?? "", /s3:\/\/.*503 SlowDown/);
      await first.kill();
    } finally {
      await proxy.close();
    }
    // Changes 1-3 in both; change 4 in the file only, never committed.
    const second = await run({}, notes(3, 3));
    assertEquals(second.aborted, undefined);
    assert(second.logs.some((l) => /drop/i.test(l.message)), JSON.stringify(second.logs));
    assertEquals((await second.stop()).code, 0);
    const node = dumpDatabase(`${dir}/lightningd.sqlite3`);
    await restored(root, "a", [file]);
    await restored(root, "b", [s3]);
    assertEquals([dumpDatabase(`${root}/a`), dumpDatabase(`${root}/b`)], [node, node]);
  });
});

test("degrade: a failed S3 is dropped with a BROKEN line and an alarm; restore refuses it", async () => {
  await withNode(async ({ root, dir, bucket, file, s3, run }) => {
    const s = sharedRgw({ exportKeys: true });
    let puts = 0;
    const proxy = new SlowdownProxy(s.port, (line) => line.startsWith("PUT") && ++puts > 3);
    let node: string;
    try {
      const through = s.url(bucket, "node", proxy.port);
      const lightningd = await run(
        { mirror_urls: [through], mirror_failure: "degrade" },
        [SCHEMA, ...notes(0, 5)],
      );
      assertEquals(lightningd.aborted, undefined);
      assert(
        lightningd.logs.some((l) =>
          l.level === "broken" &&
          /^BROKEN: destination s3:\/\/.* failed on change 4/.test(l.message)
        ),
        JSON.stringify(lightningd.logs),
      );
      const status = (await lightningd.request("backup-status", {})).result as Record<
        string,
        unknown
      >;
      assertMatch(String(status.alarm), /^BROKEN: 1 of 2 destinations failed .*s3:\/\//);
      assertEquals((await lightningd.stop()).code, 0);
      node = dumpDatabase(`${dir}/lightningd.sqlite3`);
    } finally {
      await proxy.close();
    }
    // The file copy is current, S3 lags at 3: restore takes the file and names S3's version.
    const output = await restored(root, "newest", [s3, "--also", file]);
    assertMatch(output.stdout[0], /at version 6: .*, from file:\/\//);
    assertMatch(output.stdout[1], /^The other copies: s3:\/\/.* at 3$/);
    assertEquals(dumpDatabase(`${root}/newest`), node);
    // With the file copy gone, S3 may be lagging: refused, then restored when accepted.
    Deno.removeSync(`${root}/backup`, { recursive: true });
    const refused = new BufferedOutput();
    assertEquals(await restore([file, `${root}/old`, "--also", s3], refused), 1);
    assertMatch(refused.stdout[0], /^Skipped file:\/\/.*: Cannot open backup: nothing at/);
    assertMatch(
      refused.stderr[0],
      /newest copy at hand, s3:\/\/.*, is at version 3, but file:.* could not be read .*--accept-older/,
    );
    const accepted = await restored(root, "old", [file, "--also", s3, "--accept-older"]);
    assertMatch(accepted.stdout[1], /at version 3: .*, from s3:\/\//);
    assertMatch(accepted.stdout[2], /^Danger: restored as asked/);
  });
});

test("destinations that disagree refuse the node at its first write", async () => {
  await withNode(async ({ dir, file, run }) => {
    writeLockFile(dir, { backend_url: file });
    const alone = FakeLightningd.spawn({ lightningDir: dir });
    try {
      await alone.getmanifest();
      for (const statements of [SCHEMA, ...notes(0, 3)]) {
        assertEquals(await alone.transaction(statements), "committed");
      }
      assertEquals((await alone.stop()).code, 0);
    } finally {
      await alone.kill().catch(() => {});
    }
    const both = await run({}, notes(3, 1));
    assertMatch(
      both.aborted ?? "",
      /destinations disagree \(file:\/\/.* at 4, s3:\/\/.* at 0\): s3:\/\/.* lack changes the newest holds .*remove each from backup.lock .*cln-backup mirror NEW_URL --lightning-dir '\/[^']+'/,
    );
  });
});

test("degrade: S3 failing the change after a rewind stops the node, not left holding the dropped change", async () => {
  await withNode(async ({ root, dir, bucket, s3, run }) => {
    const s = sharedRgw({ exportKeys: true });
    let refuse = false;
    const proxy = new SlowdownProxy(s.port, (line) => refuse && line.startsWith("PUT"));
    try {
      const lock = { mirror_urls: [s.url(bucket, "node", proxy.port)], mirror_failure: "degrade" };
      // Both copies store change 4, then lightningd dies before it commits it.
      const first = await run(lock, [SCHEMA, ...notes(0, 2)]);
      const writes = [...notes(2, 1)[0], bumpStatement(3)];
      first.db.exec("BEGIN");
      for (const statement of writes) first.db.exec(statement);
      const answer = await first.request("db_write", { data_version: 4, writes });
      assertEquals(answer.result, { result: "continue" });
      first.db.exec("ROLLBACK");
      await first.close();
      // The next start drops change 4, which an S3 rewind does by storing the next one.
      refuse = true;
      const second = await run(lock, notes(3, 1));
      assertMatch(second.aborted ?? "", /503 SlowDown.*a rewind and the change after it need/);
      await second.close();
      refuse = false;
      const third = await run(lock, notes(4, 1));
      assertEquals(third.aborted, undefined);
      assertEquals((await third.stop()).code, 0);
    } finally {
      await proxy.close();
    }
    await restored(root, "from-s3", [s3]);
    assertEquals(dumpDatabase(`${root}/from-s3`), dumpDatabase(`${dir}/lightningd.sqlite3`));
  });
});
