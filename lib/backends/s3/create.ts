/**
 * Creating an S3 backup (init): the claim on the prefix, then an encrypted backup's wrapped
 * key, then the base, written as a local base segment and uploaded in parts (a multipart
 * upload, so no step holds a database in memory), then `backup-id`, stored only where none
 * is: the object that says a backup is there. A failure before it leaves no backup, and init
 * removes what it uploaded, the claim last.
 *
 * @module
 */
import {
  type BasePlace,
  type NewEncryption,
  type SnapshotSource,
  writeBase,
} from "../file/create.ts";
import type { DataKey } from "../../crypto/data_key.ts";
import { objectCipher, ObjectKind } from "./object_cipher.ts";
import { baseName } from "../../format/layout.ts";
import { newBackupId } from "../../format/segment.ts";
import { S3Client, type S3Credentials, S3Error } from "./client.ts";
import { baseKey, claimKey, idKey, wrappedKeyKey } from "./keys.ts";
import { putNew, s3Url } from "./backend.ts";
import { DEFAULT_S3_POLICY, retrying, type S3RetryPolicy } from "./retry.ts";
import { readFull } from "../../fs/read_full.ts";
import { makeScratchDir, removeScratchDir } from "../../fs/scratch_dir.ts";

const claimName = claimKey("");
const idName = idKey("");

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
      const filled = readFull(file, buffer);
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
 * Where a base goes in an S3 backup: its id, the last record it covers, and an encrypted
 * backup's key, which seals its records bound to its object name.
 */
export function s3BasePlace(
  backupId: Uint8Array,
  version: number,
  seq: number,
  key: DataKey | undefined,
): BasePlace {
  const place = { backupId, kind: ObjectKind.Base, first: version, second: seq };
  return { backupId, firstLog: seq + 1, key, cipher: key && objectCipher(key, place) };
}

/**
 * Uploads `source` as the base covering the records up to `seq`, written first as a base
 * segment in a temporary directory of its own; returns its key.
 */
export async function uploadBase(
  client: S3Client,
  source: SnapshotSource,
  place: { backupId: Uint8Array; seq: number; key?: DataKey },
  policy: S3RetryPolicy,
): Promise<string> {
  const tmp = makeScratchDir("base");
  try {
    writeBase(tmp, source, s3BasePlace(place.backupId, source.version, place.seq, place.key));
    const key = baseKey(client.url.prefix, source.version, place.seq);
    await uploadFile(client, key, `${tmp}/${baseName(source.version)}`, policy);
    return key;
  } finally {
    removeScratchDir(tmp);
  }
}

/**
 * Refuses a prefix that holds a backup, or objects of one an init stopped before its end
 * left (its claim and no backup-id: said as such, since it may also be running now).
 */
async function checkEmptyPrefix(
  client: S3Client,
  url: string,
  policy: S3RetryPolicy,
  action: string,
): Promise<void> {
  const prefix = client.url.prefix;
  const names = await retrying("listing the prefix", policy, () => {}, async () => {
    const names = new Set<string>();
    for await (const page of client.list(prefix)) {
      for (const { key } of page) {
        const name = key.slice(prefix.length);
        if (!name.includes("/")) names.add(name);
      }
      // Keys come in order: past "claim", or with "backup-id" (which sorts first), the rest
      // of a large backup's listing tells nothing more.
      const last = page.at(-1)?.key.slice(prefix.length) ?? "";
      if (names.has(idName) || last > claimName) break;
    }
    return names;
  });
  if (names.has(claimName) && !names.has(idName)) {
    throw new Error(
      `${action}: "${url}" holds the claim of an init or upgrade that did not finish, or is ` +
        `running now (${client.where}): if none is running, remove the prefix's objects, then ` +
        `run this again`,
    );
  }
  if (names.size > 0) {
    throw new Error(
      `${action}: "${url}" already holds objects (${client.where}): choose a new prefix, or ` +
        `remove them if they are not a backup you need`,
    );
  }
}

/**
 * Claims the prefix of `url` for one creation (init, upgrade): refuses a prefix that holds
 * objects, then stores `claim` (this creation's backup id) where none is. Of two creations at
 * once only one goes on: the other would store a base of the same snapshot under the same
 * name, then remove it as its own. The claim stays with the backup; the returned release
 * removes it once a creation that failed has removed what it stored.
 */
export async function claimPrefix(
  client: S3Client,
  url: string,
  backupId: Uint8Array,
  policy: S3RetryPolicy,
  action: string,
): Promise<() => Promise<void>> {
  await checkEmptyPrefix(client, url, policy, action);
  const key = claimKey(client.url.prefix);
  try {
    await putNew(client, key, backupId, "the claim on the prefix", policy, () => {});
  } catch (error) {
    if (!(error instanceof S3Error) || error.status !== 412) throw error;
    throw new Error(
      `${action}: another init or upgrade is creating a backup at "${url}" meanwhile: ` +
        `nothing was stored; let it finish, then check its backup with status`,
    );
  }
  const release = () => client.delete(key).catch(() => {});
  await checkConditionalWrites(client, key, backupId, policy, action, release);
  return release;
}

/**
 * Stores the claim once more where it is: a store that honours `If-None-Match: *` refuses
 * it (412). One that stores it has no way to keep a second writer, or an earlier try of a
 * change, from overwriting a change object, so no backup is made there.
 */
async function checkConditionalWrites(
  client: S3Client,
  key: string,
  claim: Uint8Array,
  policy: S3RetryPolicy,
  action: string,
  release: () => Promise<void>,
): Promise<void> {
  try {
    await retrying(
      "checking conditional writes",
      policy,
      () => {},
      () => client.put(key, claim, { create: true }),
    );
  } catch (error) {
    if (error instanceof S3Error && error.status === 412) return;
    await release();
    throw error;
  }
  await release();
  throw new Error(
    `${action}: the S3 service at ${client.url.endpoint} stored an object over one already ` +
      `there despite If-None-Match: *, which it does not honour: the backup needs it so that ` +
      `no change object is ever overwritten (by a second node on the prefix, or a retry): use ` +
      `a store that honours conditional writes (Amazon S3 and Ceph RGW do)`,
  );
}

/**
 * Creates the backup at `url`: empty at version 0, or holding `snapshot`; encrypted when
 * `encryption` is given (its wrapped key stored first). Refuses a prefix that holds a
 * backup, or objects of one an interrupted init left.
 */
export async function createS3Backup(
  url: string,
  credentials: S3Credentials,
  snapshot?: SnapshotSource,
  policy: S3RetryPolicy = DEFAULT_S3_POLICY,
  encryption?: NewEncryption,
): Promise<void> {
  const client = new S3Client(s3Url(url), credentials, policy.timeoutMs);
  const prefix = client.url.prefix;
  const backupId = encryption?.backupId ?? newBackupId();
  const release = await claimPrefix(client, url, backupId, policy, "Cannot create backup");
  const uploaded: string[] = [];
  try {
    // Stored where none is; a retry that finds its own earlier try stored (its answer lost)
    // counts it as done, where a 412 alone would read as another init's.
    const log = () => {};
    if (encryption) {
      const key = wrappedKeyKey(prefix);
      await putNew(client, key, encryption.wrappedKey, "the wrapped key", policy, log);
      uploaded.push(key);
    }
    if (snapshot) {
      const place = { backupId, seq: 0, key: encryption?.key };
      uploaded.push(await uploadBase(client, snapshot, place, policy));
    }
    await putNew(client, idKey(prefix), backupId, "the backup id", policy, log);
  } catch (error) {
    for (const key of uploaded) await client.delete(key).catch(() => {});
    await release();
    if (error instanceof S3Error && error.status === 412) {
      // A creation that takes no claim (an older cln-backup) stored its objects meanwhile.
      throw new Error(
        `Cannot create backup: another init created a backup at "${url}" meanwhile: check ` +
          `which one to keep`,
      );
    }
    throw new Error(`Cannot create backup: ${(error as Error).message}`);
  }
}
