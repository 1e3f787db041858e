/**
 * Two creations at once on one S3 prefix (two `init`s, or an `init` and an `upgrade`, say a
 * node's set-up run twice by a configuration tool): one backup is made, the other creation
 * stops with a clear error, and nothing of the one made is overwritten or removed.
 */
import { assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { S3Client, S3Error } from "../lib/backends/s3/client.ts";
import { copyToS3 } from "../lib/backends/s3/copy.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { dumpDatabase } from "./support/dump.ts";
import { DatabaseSync } from "node:sqlite";

const FAST = { timeoutMs: 5_000, retries: 2, retryDelayMs: 50, backoff: 1 };

function database(path: string, version: number): void {
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB)");
  db.exec(`INSERT INTO vars (name, intval) VALUES ('data_version', ${version})`);
  db.exec("CREATE TABLE notes (note TEXT)");
  db.prepare("INSERT INTO notes VALUES (?)").run("x".repeat(100_000));
  db.close();
}

/** Runs both creations at once: what each ended with, then the backup that is there, restored. */
async function race(
  url: string,
  creations: (() => Promise<void>)[],
  root: string,
): Promise<{ outcomes: PromiseSettledResult<void>[]; restored: string }> {
  const outcomes = await Promise.allSettled(creations.map((create) => create()));
  const s = sharedRgw();
  const reader = await S3BackupReader.fetch(url, s.credentials);
  try {
    restoreBackup(reader, `${root}/restored.sqlite3`);
  } finally {
    reader.close();
  }
  return { outcomes, restored: dumpDatabase(`${root}/restored.sqlite3`) };
}

function oneRefused(outcomes: PromiseSettledResult<void>[]): void {
  assertEquals(outcomes.map((o) => o.status).sort(), ["fulfilled", "rejected"]);
  const refused = outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult;
  // Refused at its claim, or, when the other's claim came first, at the look for an empty
  // prefix before it: both say another init or upgrade may be running.
  assertMatch(
    String(refused.reason?.message),
    /^Cannot (create|upgrade) backup: (another init or upgrade is creating a backup at "s3:\/\/.*" meanwhile|"s3:\/\/.*" holds the claim of an init or upgrade that did not finish, or is running now)/,
  );
}

rgwTest("two inits at once on one prefix: one backup, whole; the other refused", async () => {
  const s = sharedRgw();
  const root = Deno.makeTempDirSync({ prefix: "s3-init-race-" });
  try {
    database(`${root}/node.sqlite3`, 5);
    const url = s.url(await s.bucket(), "node");
    const create = () =>
      createS3Backup(url, s.credentials, { version: 5, path: `${root}/node.sqlite3` }, FAST);
    // The same snapshot makes the same base name: the one refused must not remove it.
    const { outcomes, restored } = await race(url, [create, create], root);
    oneRefused(outcomes);
    assertEquals(restored, dumpDatabase(`${root}/node.sqlite3`));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

rgwTest("an init and an upgrade at once on one prefix: one backup, whole", async () => {
  const s = sharedRgw();
  const root = Deno.makeTempDirSync({ prefix: "s3-init-race-" });
  try {
    database(`${root}/node.sqlite3`, 5);
    createFileBackup(`${root}/local`, { version: 5, path: `${root}/node.sqlite3` });
    const url = s.url(await s.bucket(), "node");
    const local = new FileBackupReader(`file://${root}/local`, `${root}/local`);
    const { outcomes, restored } = await race(url, [
      () => createS3Backup(url, s.credentials, { version: 5, path: `${root}/node.sqlite3` }, FAST),
      () => copyToS3(url, s.credentials, local.entries(), FAST),
    ], root);
    oneRefused(outcomes);
    assertEquals(restored, dumpDatabase(`${root}/node.sqlite3`));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

rgwTest("a creation that fails gives its claim back: init can be run again", async () => {
  const s = sharedRgw();
  const root = Deno.makeTempDirSync({ prefix: "s3-init-race-" });
  try {
    const url = s.url(await s.bucket(), "node");
    // Claimed, then the snapshot cannot be read.
    await assertRejects(
      () => createS3Backup(url, s.credentials, { version: 5, path: `${root}/gone` }, FAST),
      /^Cannot create backup: .*gone/,
    );
    database(`${root}/node.sqlite3`, 5);
    await createS3Backup(url, s.credentials, { version: 5, path: `${root}/node.sqlite3` }, FAST);
    const { restored } = await race(url, [], root);
    assertEquals(restored, dumpDatabase(`${root}/node.sqlite3`));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

rgwTest("an init stopped after its claim is named as such when init runs again", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket(), "node");
  // What a creation killed after its claim leaves (a kill cannot remove it).
  await s.client(url).put("node/claim", new Uint8Array(16), { create: true });
  await assertRejects(
    () => createS3Backup(url, s.credentials, undefined, FAST),
    /^Cannot create backup: ".*" holds the claim of an init or upgrade that did not finish, or is running now \(.*\): if none is running, remove the prefix's objects, then run this again$/,
  );
});

rgwTest(
  "an init whose backup-id PUT landed but whose answer was lost counts it as stored",
  async () => {
    const s = sharedRgw();
    const root = Deno.makeTempDirSync({ prefix: "s3-init-race-" });
    const put = S3Client.prototype.put;
    try {
      database(`${root}/node.sqlite3`, 5);
      const url = s.url(await s.bucket(), "node");
      // The object is stored, then the answer is lost: the retry meets its own backup-id.
      let lost = false;
      S3Client.prototype.put = async function (key, body, options) {
        await put.call(this, key, body, options);
        if (key.endsWith("/backup-id") && !lost) {
          lost = true;
          throw new S3Error(`Cannot store "${key}": no answer within 5 s`, 0, "", true);
        }
      };
      await createS3Backup(url, s.credentials, { version: 5, path: `${root}/node.sqlite3` }, FAST);
      S3Client.prototype.put = put;
      assertEquals(lost, true);
      const { restored } = await race(url, [], root);
      assertEquals(restored, dumpDatabase(`${root}/node.sqlite3`));
    } finally {
      S3Client.prototype.put = put;
      Deno.removeSync(root, { recursive: true });
    }
  },
);
