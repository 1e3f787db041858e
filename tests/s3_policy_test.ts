/**
 * The README's IAM policy (Object storage, Set-up) allows every request the backup makes, on
 * a real S3 server: keys of a second user, allowed nothing but that policy (set as the
 * bucket's policy on RGW), create a backup, write and pack changes, compact it and restore
 * it, and doctor reads the bucket's lifecycle rules. Without `s3:ListBucketMultipartUploads`,
 * compaction is refused.
 */
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertRejects } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { note, SCHEMA } from "./support/plugin_session.ts";
import { bumpStatement } from "./support/statements.ts";
import { rgwTestInDir } from "./support/shared_rgw.ts";
import type { S3Credentials } from "../lib/backends/s3/client.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { S3Backend } from "../lib/backends/s3/backend.ts";
import { compactS3 } from "../lib/backends/s3/compaction.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { type Rgw, writeCredentials } from "./support/rgw.ts";
import { lifecycleCheck } from "../lib/cli/doctor/lifecycle_check.ts";
import { realSystem } from "../lib/cli/doctor/system.ts";

const FAST = { timeoutMs: 5_000, retries: 1, retryDelayMs: 50, backoff: 2 };
const README = new URL("../README.md", import.meta.url);

/** The README's policy for `bucket` and `prefix`, as a bucket policy for `user`. */
function readmePolicy(
  bucket: string,
  prefix: string,
  user: string,
): { Statement: { Action: string | string[] }[] } {
  const text = Deno.readTextFileSync(README);
  const json = /For AWS, this IAM policy[^]*?```json\n([^`]*)```/.exec(text)?.[1];
  if (json === undefined) throw new Error("README: no IAM policy after 'For AWS, this IAM policy'");
  const policy = JSON.parse(
    json.replaceAll("arn:aws:s3:::bucket", `arn:aws:s3:::${bucket}`)
      .replaceAll('"node1/', `"${prefix}/`).replaceAll("/node1/", `/${prefix}/`),
  );
  for (const statement of policy.Statement) {
    statement.Principal = { AWS: [`arn:aws:iam:::user/${user}`] };
  }
  return policy;
}

/** Sets the bucket's policy, as its owner. */
function putBucketPolicy(s: Rgw, bucket: string, policy: unknown): Promise<void> {
  return s.putBucketConfig(bucket, "policy", JSON.stringify(policy));
}

/** A second user of the gateway, allowed nothing of its own. */
async function newUser(s: Rgw): Promise<{ uid: string; keys: S3Credentials }> {
  // Test files share the gateway: a name no other test takes.
  const uid = `limited${crypto.randomUUID()}`;
  const hex = (n: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0"))
      .join("");
  const keys = { accessKeyId: hex(10), secretAccessKey: hex(20) };
  await s.admin(
    "user",
    "create",
    `--uid=${uid}`,
    "--display-name=limited",
    `--access-key=${keys.accessKeyId}`,
    `--secret-key=${keys.secretAccessKey}`,
  );
  return { uid, keys };
}

function snapshot(path: string): void {
  const db = new DatabaseSync(path);
  db.exec(SCHEMA.join(";"));
  db.exec("UPDATE vars SET intval = 1 WHERE name = 'data_version'");
  db.close();
}

const change = (version: number) => ({
  version,
  statements: [note(`n${version}`), bumpStatement(version - 1)],
});

const test = rgwTestInDir("cln-backup-s3-policy-");

test(
  "the README's IAM policy allows init, writes, packing, compaction and restore",
  async (s, dir) => {
    const bucket = await s.bucket();
    const { uid, keys } = await newUser(s);
    await putBucketPolicy(s, bucket, readmePolicy(bucket, "node1", uid));
    const url = s.url(bucket, "node1");
    snapshot(`${dir}/snapshot.sqlite3`);
    await createS3Backup(url, keys, { version: 1, path: `${dir}/snapshot.sqlite3` }, FAST);
    const backend = await S3Backend.connect(url, {
      credentials: keys,
      policy: FAST,
      packer: { every: 4 },
    });
    const changes = Array.from({ length: 12 }, (_, i) => change(i + 2));
    for (const c of changes) await backend.append(c);
    await backend.settle();
    backend.close();
    const result = await compactS3(url, keys, { policy: FAST });
    assert(result.versions_folded > 0, JSON.stringify(result));

    const node = `${dir}/node.sqlite3`;
    snapshot(node);
    const db = new DatabaseSync(node);
    for (const c of changes) for (const statement of c.statements) db.exec(statement);
    db.close();
    const reader = await S3BackupReader.fetch(url, keys, FAST);
    try {
      restoreBackup(reader, `${dir}/restored.sqlite3`);
    } finally {
      reader.close();
    }
    assertEquals(dumpDatabase(`${dir}/restored.sqlite3`), dumpDatabase(node));
  },
);

test("without s3:ListBucketMultipartUploads, compaction is refused", async (s, dir) => {
  const bucket = await s.bucket();
  const { uid, keys } = await newUser(s);
  const policy = readmePolicy(bucket, "node1", uid);
  for (const statement of policy.Statement as { Action: string | string[] }[]) {
    statement.Action = [statement.Action].flat().filter((a) =>
      a !== "s3:ListBucketMultipartUploads"
    );
  }
  await putBucketPolicy(s, bucket, policy);
  const url = s.url(bucket, "node1");
  snapshot(`${dir}/snapshot.sqlite3`);
  await createS3Backup(url, keys, { version: 1, path: `${dir}/snapshot.sqlite3` }, FAST);
  await assertRejects(
    () => compactS3(url, keys, { policy: FAST }),
    /Cannot list the uploads under "node1\/base-": 403 AccessDenied/,
  );
});

test(
  "doctor reads the bucket's lifecycle rules with the README's policy; without s3:GetLifecycleConfiguration it says to grant it",
  async (s, dir) => {
    const bucket = await s.bucket();
    const { uid, keys } = await newUser(s);
    const url = s.url(bucket, "node1");
    writeCredentials(dir, keys);
    const check = () =>
      lifecycleCheck(
        { dir, database: `${dir}/lightningd.sqlite3`, user: undefined, lock: { backend_url: url } },
        realSystem,
      );
    const policy = readmePolicy(bucket, "node1", uid);
    await putBucketPolicy(s, bucket, policy);
    assertEquals(await check(), [
      "OK",
      `no lifecycle rule of bucket "${bucket}" expires or archives ${url}`,
    ]);
    for (const statement of policy.Statement as { Action: string | string[] }[]) {
      statement.Action = [statement.Action].flat().filter((a) =>
        a !== "s3:GetLifecycleConfiguration"
      );
    }
    await putBucketPolicy(s, bucket, policy);
    assertEquals(await check(), [
      "WARN",
      `cannot check the lifecycle rules of bucket "${bucket}": the keys in ` +
      `backup-s3.credentials may not read them: grant them s3:GetLifecycleConfiguration on the ` +
      `bucket (README, S3), or check that no rule expires objects under "node1/"`,
    ]);
  },
);
