/**
 * Faults between the plugin and a real S3 server (Ceph RGW), each with the real plugin
 * process under the fake lightningd: connections cut in the middle of a PUT and of its
 * answer; a server that stops answering; 503 SlowDown, for a while and for good; a full
 * quota; the gateway killed in the middle of a multipart upload. After each: the node either
 * went on or stopped cleanly, no change it committed is missing from the backup, none is
 * stored twice, and a restore equals its database.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { type Fault, FaultProxy } from "./support/fault_proxy.ts";
import { SlowdownProxy } from "./support/slowdown_proxy.ts";
import { type Rgw, writeCredentials } from "./support/rgw.ts";
import { rgwTest, sharedRgw, withOwnRgw } from "./support/shared_rgw.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { createS3Backup, PART_BYTES } from "../lib/backends/s3/create.ts";
import { DatabaseSync } from "node:sqlite";
import { createHash } from "node:crypto";

const SCHEMA = [
  "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name))",
  "INSERT INTO vars (name, intval) VALUES ('data_version', 0)",
  "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)",
];
const NOTES = 6;
/** Patience small enough for tests, the same code paths as the defaults. */
const PATIENCE = { s3_timeout_s: 1, s3_retries: 3, s3_retry_delay_s: 0.05 };

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(length, at + 65536)));
  }
  return bytes;
}

/** A hash of every row (a dump of megabytes of blobs as text would take seconds). */
function contentHash(path: string): string {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const hash = createHash("sha256");
    for (const table of ["vars", "notes", "blobs"]) {
      for (const row of db.prepare(`SELECT * FROM ${table} ORDER BY rowid`).all()) {
        for (const value of Object.values(row)) {
          hash.update(value instanceof Uint8Array ? value : `${typeof value}:${value}|`);
        }
      }
    }
    return hash.digest("hex");
  } finally {
    db.close();
  }
}

interface Trial {
  committed: number;
  aborted: string | undefined;
  logs: string[];
  node: string;
  restored: string;
  /** Changes the backup holds. */
  changes: number;
}

/**
 * Runs the schema and the notes with `backup.lock` naming `url` (through a proxy, maybe), as
 * far as the node gets, then restores the backup straight from RGW.
 */
async function runNode(s: Rgw, url: string, direct: string, lock = PATIENCE): Promise<Trial> {
  const root = Deno.makeTempDirSync({ prefix: "s3-fault-" });
  try {
    const dir = `${root}/node`;
    Deno.mkdirSync(dir);
    writeLockFile(dir, { backend_url: url, ...lock });
    writeCredentials(dir, s.credentials);
    const lightningd = FakeLightningd.spawn({
      lightningDir: dir,
      env: { AWS_ACCESS_KEY_ID: "" },
    });
    let committed = 0;
    try {
      await lightningd.getmanifest();
      committed = await lightningd.commitEach([
        SCHEMA,
        ...Array.from({ length: NOTES }, (_, i) => [
          `INSERT INTO notes (note) VALUES ('note ${i} ${"x".repeat(i * 300)}')`,
        ]),
      ]);
      if (!lightningd.aborted) await lightningd.stop();
    } finally {
      await lightningd.kill().catch(() => {});
    }
    const reader = await S3BackupReader.fetch(direct, s.credentials);
    let changes = 0;
    try {
      for (const entry of reader.entries()) if (entry.kind === "change") changes++;
      restoreBackup(reader, `${root}/restored.sqlite3`, { toVersion: committed });
    } finally {
      reader.close();
    }
    return {
      committed,
      aborted: lightningd.aborted,
      logs: lightningd.logs.map((l) => `${l.level}: ${l.message}`),
      node: dumpDatabase(`${dir}/lightningd.sqlite3`),
      restored: dumpDatabase(`${root}/restored.sqlite3`),
      changes,
    };
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

/** A new bucket with an empty backup: its URL through `port` and straight to RGW. */
async function newBackup(s: Rgw, port?: number): Promise<{ url: string; direct: string }> {
  const bucket = await s.bucket();
  const direct = s.url(bucket);
  await createS3Backup(direct, s.credentials);
  return { url: s.url(bucket, "node", port), direct };
}

/** Nothing committed is missing or doubled; the backup holds at most one change more. */
function checkTrial(trial: Trial, context: string): void {
  assertEquals(trial.restored, trial.node, `${context}: restore equals the node`);
  assert(
    trial.changes === trial.committed || trial.changes === trial.committed + 1,
    `${context}: ${trial.changes} changes stored, ${trial.committed} committed`,
  );
}

const test = rgwTest;

test("S3: a connection cut in the middle of a PUT or of its answer is retried", async () => {
  const s = sharedRgw();
  // Byte offsets inside the early and later changes' requests, and inside answers.
  const faults: Fault[] = [
    { kind: "cut", direction: "c2s", at: 2_500 },
    { kind: "cut", direction: "c2s", at: 5_000 },
    { kind: "cut", direction: "s2c", at: 1_200 },
    { kind: "cut", direction: "s2c", at: 2_400 },
  ];
  for (const fault of faults) {
    const proxy = new FaultProxy(s.port, fault);
    try {
      const { url, direct } = await newBackup(s, proxy.port);
      const trial = await runNode(s, url, direct);
      const context = `${fault.direction}@${fault.at}`;
      assert(proxy.struck, `${context}: the cut happened`);
      assertEquals([trial.committed, trial.aborted], [NOTES + 1, undefined], context);
      assertEquals(trial.changes, NOTES + 1, context);
      checkTrial(trial, context);
    } finally {
      await proxy.close();
    }
  }
});

test("S3: a server that stops answering stops the node after bounded retries", async () => {
  const s = sharedRgw();
  const proxy = new FaultProxy(s.port, { kind: "hang", direction: "c2s", at: 6_000 });
  try {
    const { url, direct } = await newBackup(s, proxy.port);
    const trial = await runNode(s, url, direct);
    assert(trial.committed < NOTES + 1, "the node stopped");
    assertMatch(trial.aborted ?? "", /no answer within 1 s.*gave up after 4 tries/);
    checkTrial(trial, "hang");
  } finally {
    await proxy.close();
  }
});

test("S3: 503 SlowDown is retried; SlowDown for good stops the node", async () => {
  const s = sharedRgw();
  let refusals = 2;
  const proxy = new SlowdownProxy(s.port, (line) => line.startsWith("PUT") && refusals-- > 0);
  try {
    const { url, direct } = await newBackup(s, proxy.port);
    const trial = await runNode(s, url, direct);
    assertEquals([trial.committed, trial.aborted], [NOTES + 1, undefined]);
    assertEquals(proxy.requests.filter((r) => r.refused).length, 2);
    assert(trial.logs.some((l) => /503 SlowDown.*trying storing change 1 again/.test(l)));
    checkTrial(trial, "SlowDown twice");
    // From the fourth change on, every PUT is refused.
    let puts = 0;
    proxy.refuse = (line) => line.startsWith("PUT") && ++puts > 3;
    const { url: url2, direct: direct2 } = await newBackup(s, proxy.port);
    const stopped = await runNode(s, url2, direct2);
    assertEquals(stopped.committed, 3);
    assertMatch(stopped.aborted ?? "", /503 SlowDown .*gave up after 4 tries/);
    checkTrial(stopped, "SlowDown for good");
  } finally {
    await proxy.close();
  }
});

test("S3: a full quota stops the node with what to do; nothing committed is lost", async () => {
  const s = sharedRgw();
  const { url, direct } = await newBackup(s);
  const bucket = /^s3:\/\/([^/]+)\//.exec(direct)![1];
  // The claim, backup-id and three changes fit.
  await s.admin("quota", "set", "--quota-scope=bucket", `--bucket=${bucket}`, "--max-objects=5");
  await s.admin("quota", "enable", "--quota-scope=bucket", `--bucket=${bucket}`);
  const trial = await runNode(s, url, direct);
  assertEquals(trial.committed, 3);
  assertMatch(trial.aborted ?? "", /403 QuotaExceeded .*quota .* is full: raise it, or free space/);
  checkTrial(trial, "quota");
});

// A gateway of its own: the test kills it.
test("S3: init's multipart upload survives the gateway killed in the middle of it", () =>
  withOwnRgw(async (s) => {
    const root = Deno.makeTempDirSync({ prefix: "s3-multipart-" });
    const proxy = new FaultProxy(s.port);
    try {
      // A database of two parts, of random (incompressible) bytes.
      const database = `${root}/node.sqlite3`;
      const db = new DatabaseSync(database);
      db.exec(SCHEMA.join(";"));
      db.exec("CREATE TABLE blobs (data BLOB)");
      const insert = db.prepare("INSERT INTO blobs (data) VALUES (?)");
      for (let i = 0; i < 24; i++) insert.run(randomBytes(PART_BYTES / 16));
      db.exec("UPDATE vars SET intval = 7 WHERE name = 'data_version'");
      db.close();
      const bucket = await s.bucket();
      const url = s.url(bucket, "node", proxy.port);
      const creating = createS3Backup(url, s.credentials, { version: 7, path: database }, {
        timeoutMs: 2_000,
        retries: 8,
        retryDelayMs: 100,
        backoff: 1.5,
      });
      // Once the first part is on its way, the gateway dies and comes back.
      while (proxy.forwarded.c2s < PART_BYTES / 2) await new Promise((r) => setTimeout(r, 5));
      await s.killGateway();
      await new Promise((r) => setTimeout(r, 300));
      await s.startGateway();
      await creating;
      const reader = await S3BackupReader.fetch(s.url(bucket), s.credentials);
      try {
        assertEquals(reader.describe().snapshots, [7]);
        restoreBackup(reader, `${root}/restored.sqlite3`);
      } finally {
        reader.close();
      }
      assertEquals(contentHash(`${root}/restored.sqlite3`), contentHash(database));
    } finally {
      await proxy.close();
      Deno.removeSync(root, { recursive: true });
    }
  }));
