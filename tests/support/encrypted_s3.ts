/**
 * Encrypted S3 backups for tests: made as `init --encrypt` makes them (key.json as an object,
 * the plugin's key file beside backup.lock), with a cheap scrypt so tests stay fast, and read
 * back with the key.
 *
 * @module
 */
import type { SnapshotSource } from "../../lib/backends/file/create.ts";
import { createS3Backup } from "../../lib/backends/s3/create.ts";
import { S3BackupReader } from "../../lib/backends/s3/reader.ts";
import type { S3RetryPolicy } from "../../lib/backends/s3/retry.ts";
import { restoreBackup } from "../../lib/backup/restore.ts";
import { DataKey } from "../../lib/crypto/data_key.ts";
import { wrapKey } from "../../lib/crypto/wrapped_key.ts";
import { newBackupId } from "../../lib/format/segment.ts";
import { CHEAP_SCRYPT, PASSPHRASE } from "./encrypted.ts";
import { dumpDatabase } from "./dump.ts";
import type { Rgw } from "./rgw.ts";

/** Creates an encrypted S3 backup at `url`, its key wrapped for {@linkcode PASSPHRASE}. */
export async function makeEncryptedS3Backup(
  rgw: Rgw,
  url: string,
  options: { snapshot?: SnapshotSource; key?: DataKey; policy?: S3RetryPolicy } = {},
): Promise<DataKey> {
  const key = options.key ?? await DataKey.generate();
  const backupId = newBackupId();
  const wrappedKey = await wrapKey(key, backupId, { passphrase: PASSPHRASE }, CHEAP_SCRYPT);
  await createS3Backup(url, rgw.credentials, options.snapshot, options.policy, {
    key,
    backupId,
    wrappedKey,
  });
  return key;
}

/** The dump of the encrypted S3 backup at `url` restored with `key` (to `toVersion`). */
export async function restoredS3WithKey(
  rgw: Rgw,
  url: string,
  key: DataKey,
  scratch: string,
  toVersion?: number,
): Promise<string> {
  const unlock = () => Promise.resolve(key);
  const reader = await S3BackupReader.fetch(url, rgw.credentials, undefined, undefined, unlock);
  const target = `${scratch}/restored-${crypto.randomUUID()}.sqlite3`;
  try {
    restoreBackup(reader, target, { toVersion });
  } finally {
    reader.close();
  }
  const dump = dumpDatabase(target);
  Deno.removeSync(target);
  return dump;
}

/** Every object of the bucket under `prefix`: key and bytes. */
export async function objectsOf(
  rgw: Rgw,
  url: string,
): Promise<{ key: string; bytes: Uint8Array }[]> {
  const client = rgw.client(url);
  const objects: { key: string; bytes: Uint8Array }[] = [];
  for await (const page of client.list(client.url.prefix)) {
    for (const { key } of page) objects.push({ key, bytes: await client.get(key) });
  }
  return objects;
}
