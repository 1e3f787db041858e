/**
 * The plugin's S3 keys replaced while it runs (temporary keys that expire, keys rotated): it
 * reads backup-s3.credentials again when S3 refuses its keys, and the node goes on.
 */
import { assertEquals } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { type Rgw, writeCredentials } from "./support/rgw.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { S3Client, type S3Credentials } from "../lib/backends/s3/client.ts";
import { parseBackupUrl } from "../lib/backends/url.ts";
import type { S3Url } from "../lib/backends/s3/s3_url.ts";
import { DatabaseSync } from "node:sqlite";
import { note, SCHEMA } from "./support/plugin_session.ts";
import { bumpStatement } from "./support/statements.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { S3Backend } from "../lib/backends/s3/backend.ts";
import { S3Compaction } from "../lib/backends/s3/compaction_service.ts";
import { DEFAULT_POLICY } from "../lib/compact/policy.ts";

const FAST = { timeoutMs: 5_000, retries: 2, retryDelayMs: 50, backoff: 2 };

/** A user of its own on `s` (its keys are rotated here, not the shared ones), with its first keys. */
async function newUser(s: Rgw): Promise<{ uid: string; keys: S3Credentials }> {
  const uid = `u${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const keys = userKeys(uid);
  await s.admin(
    "user",
    "create",
    `--uid=${uid}`,
    `--display-name=${uid}`,
    `--access-key=${keys.accessKeyId}`,
    `--secret=${keys.secretAccessKey}`,
  );
  return { uid, keys };
}

/** A new user's bucket on `s`, made with the user's keys: its URL. */
async function newUserBucket(s: Rgw): Promise<{ uid: string; keys: S3Credentials; url: string }> {
  const { uid, keys } = await newUser(s);
  const url = s.url(`b${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`);
  await new S3Client(parseBackupUrl(url) as S3Url, keys).createBucket();
  return { uid, keys, url };
}

/** New keys for user `uid`. */
function userKeys(uid: string): S3Credentials {
  const random = crypto.randomUUID().replaceAll("-", "");
  return {
    accessKeyId: `${uid}${random.slice(0, 8)}`.toUpperCase(),
    secretAccessKey: `${random}${random}`.slice(0, 40),
  };
}

/**
 * New keys for user `uid`, handed to `write` (its keys' file) before its `old` ones are
 * removed, as an operator rotates them.
 */
async function rotate(
  s: Rgw,
  uid: string,
  old: S3Credentials,
  write: (fresh: S3Credentials) => void = () => {},
): Promise<S3Credentials> {
  const fresh = userKeys(uid);
  await s.admin(
    "key",
    "create",
    `--uid=${uid}`,
    "--key-type=s3",
    `--access-key=${fresh.accessKeyId}`,
    `--secret=${fresh.secretAccessKey}`,
  );
  write(fresh);
  await s.admin("key", "rm", `--uid=${uid}`, "--key-type=s3", `--access-key=${old.accessKeyId}`);
  return fresh;
}

rgwTest(
  "the plugin takes the keys written to its keys' file after S3 refused its old ones",
  async () => {
    const s = sharedRgw();
    const { uid, keys, url } = await newUserBucket(s);
    const dir = makeNodeDir("restart");
    try {
      writeCredentials(dir, keys);
      const output = new BufferedOutput();
      assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.transcript);
      const lightningd = FakeLightningd.spawn({
        lightningDir: dir,
        env: { AWS_ACCESS_KEY_ID: "" },
      });
      try {
        await lightningd.getmanifest();
        const commit = (n: number) =>
          lightningd.transaction([`DELETE FROM vars WHERE name = '${n}'`]);
        assertEquals(await commit(1), "committed", lightningd.aborted);
        // The keys are rotated: new ones written to the file, the old ones removed.
        await rotate(s, uid, keys, (fresh) => writeCredentials(dir, fresh));
        assertEquals(await commit(2), "committed", lightningd.aborted);
        assertEquals((await lightningd.stop()).code, 0);
      } finally {
        await lightningd.kill().catch(() => {});
      }
    } finally {
      removeNodeDir(dir);
    }
  },
);

rgwTest(
  "a compaction after the keys were rotated takes the new keys the writer would read again",
  async () => {
    const s = sharedRgw();
    const { uid, keys, url } = await newUserBucket(s);
    const dir = Deno.makeTempDirSync({ prefix: "cln-backup-s3-keys-" });
    try {
      const snapshot = `${dir}/snapshot.sqlite3`;
      const db = new DatabaseSync(snapshot);
      db.exec(SCHEMA.join(";"));
      db.exec("UPDATE vars SET intval = 1 WHERE name = 'data_version'");
      db.close();
      await createS3Backup(url, keys, { version: 1, path: snapshot }, FAST);
      let current = keys;
      const backend = await S3Backend.connect(url, {
        credentials: keys,
        renewCredentials: () => current,
        policy: FAST,
      });
      try {
        for (let version = 2; version <= 4; version++) {
          await backend.append({
            version,
            statements: [note(`n${version}`), bumpStatement(version - 1)],
          });
        }
        await backend.settle();
        // Rotated while the writer is idle: it holds the old keys until S3 refuses them.
        current = await rotate(s, uid, keys);
        const service = new S3Compaction(backend, () => DEFAULT_POLICY, `${dir}/scratch`);
        assertEquals((await service.compact()).base_version, 3);
      } finally {
        backend.close();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);
