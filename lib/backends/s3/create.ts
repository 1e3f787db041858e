/**
 * Creating an S3 backup (init): the base, written as a local base segment and uploaded in
 * parts (a multipart upload, so no step holds a database in memory), then `backup-id`,
 * stored only where none is: the object that says a backup is there. A failure before it
 * leaves no backup, and init removes the base it uploaded.
 *
 * @module
 */
import { type SnapshotSource, writeBase } from "../file/create.ts";
import { baseName } from "../../format/layout.ts";
import { newBackupId } from "../../format/segment.ts";
import { S3Client, type S3Credentials, S3Error } from "./client.ts";
import { baseKey, idKey } from "./keys.ts";
import { s3Url } from "./backend.ts";
import { DEFAULT_S3_POLICY, retrying, type S3RetryPolicy } from "./retry.ts";

/** Parts of a multipart upload (S3 wants at least 5 MiB for all but the last). */
export const PART_BYTES = 8 * 1024 * 1024;

/** Uploads the file at `path` to `key` in parts, each retried; aborts the upload on failure. */
export async function uploadFile(
  client: S3Client,
  key: string,
  path: string,
  policy: S3RetryPolicy,
): Promise<void> {
  const uploadId = await retrying(
    `starting the upload of ${key}`,
    policy,
    () => {},
    () => client.createMultipart(key),
  );
  const file = Deno.openSync(path, { read: true });
  try {
    const etags: string[] = [];
    const buffer = new Uint8Array(PART_BYTES);
    for (;;) {
      let filled = 0;
      while (filled < buffer.length) {
        const n = file.readSync(buffer.subarray(filled));
        if (n === null) break;
        filled += n;
      }
      if (filled === 0 && etags.length > 0) break;
      const part = buffer.subarray(0, filled);
      etags.push(
        await retrying(
          `uploading part ${etags.length + 1} of ${key}`,
          policy,
          () => {},
          () => client.uploadPart(key, uploadId, etags.length + 1, part),
        ),
      );
      if (filled < buffer.length) break;
    }
    await retrying(
      `finishing the upload of ${key}`,
      policy,
      () => {},
      () => client.completeMultipart(key, uploadId, etags),
    );
  } catch (error) {
    await client.abortMultipart(key, uploadId).catch(() => {});
    throw error;
  } finally {
    file.close();
  }
}

/**
 * Uploads `source` as the base covering the records up to `seq`, written first as a base
 * segment in a temporary directory of its own; returns its key.
 */
export async function uploadBase(
  client: S3Client,
  source: SnapshotSource,
  place: { backupId: Uint8Array; seq: number },
  policy: S3RetryPolicy,
): Promise<string> {
  const tmp = Deno.makeTempDirSync({ prefix: "cln-backup-base-" });
  try {
    writeBase(tmp, source, { backupId: place.backupId, firstLog: place.seq + 1 });
    const key = baseKey(client.url.prefix, source.version, place.seq);
    await uploadFile(client, key, `${tmp}/${baseName(source.version)}`, policy);
    return key;
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}

/** Refuses a prefix that holds a backup, or objects of one an interrupted init left. */
export async function checkEmptyPrefix(
  client: S3Client,
  url: string,
  policy: S3RetryPolicy,
  action: string,
): Promise<void> {
  const prefix = client.url.prefix;
  const present = await retrying("listing the prefix", policy, () => {}, async () => {
    for await (const page of client.list(prefix)) {
      if (page.some((o) => !o.key.slice(prefix.length).includes("/"))) return true;
    }
    return false;
  });
  if (present) {
    throw new Error(
      `${action}: "${url}" already holds objects (${client.where}): choose a new prefix, or ` +
        `remove them if they are not a backup you need`,
    );
  }
}

/**
 * Creates the backup at `url`: empty at version 0, or holding `snapshot`. Refuses a prefix
 * that holds a backup, or objects of one an interrupted init left.
 */
export async function createS3Backup(
  url: string,
  credentials: S3Credentials,
  snapshot?: SnapshotSource,
  policy: S3RetryPolicy = DEFAULT_S3_POLICY,
): Promise<void> {
  const client = new S3Client(s3Url(url), credentials, policy.timeoutMs);
  const prefix = client.url.prefix;
  await checkEmptyPrefix(client, url, policy, "Cannot create backup");
  const backupId = newBackupId();
  let uploaded: string | undefined;
  try {
    if (snapshot) uploaded = await uploadBase(client, snapshot, { backupId, seq: 0 }, policy);
    await retrying(
      "storing the backup id",
      policy,
      () => {},
      () => client.put(idKey(prefix), backupId, { create: true }),
    );
  } catch (error) {
    if (uploaded) await client.delete(uploaded).catch(() => {});
    if (error instanceof S3Error && error.status === 412) {
      throw new Error(
        `Cannot create backup: another init created a backup at "${url}" meanwhile: check ` +
          `which one to keep`,
      );
    }
    throw new Error(`Cannot create backup: ${(error as Error).message}`);
  }
}
