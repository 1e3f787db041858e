/**
 * A new S3 backup holding what another backup holds (upgrade): each snapshot uploaded as a
 * base, the changes after it in packs of up to 16 MiB, the newest change in an object of
 * its own (as the plugin's writer leaves it), and `backup-id` last, so an interrupted copy
 * leaves no backup. An encrypted copy stores its wrapped key first and seals every record
 * for the object it lands in (object_cipher.ts).
 *
 * @module
 */
import type { BackupEntry } from "../backend.ts";
import {
  encodeStatements,
  frameRecord,
  linkRecord,
  RECORD_HEADER_SIZE,
  RecordKind,
  SEALED_OVERHEAD,
  type StoredPayload,
  storePayload,
} from "../../format/record.ts";
import type { NewEncryption } from "../file/create.ts";
import { changePlace, objectCipher, ObjectKind, type ObjectPlace } from "./object_cipher.ts";
import { encodeSegmentHeader, newBackupId, SegmentKind } from "../../format/segment.ts";
import { writeAll } from "../../fs/durable.ts";
import { S3Client, type S3Credentials } from "./client.ts";
import { changeKey, idKey, packKey, wrappedKeyKey } from "./keys.ts";
import { putNew, s3Url } from "./backend.ts";
import { claimPrefix, uploadBase } from "./create.ts";
import { DEFAULT_S3_POLICY, type S3RetryPolicy } from "./retry.ts";
import { makeScratchDir, removeScratchDir } from "../../fs/scratch_dir.ts";

const PACK_BYTES = 16 * 1024 * 1024;

interface Pending {
  seq: number;
  version: number;
  payload: StoredPayload;
  /** Bytes of its record, sealed or not. */
  length: number;
}

/**
 * Copies `entries` (a reader's, in restore order) into a new backup at `url`; encrypted when
 * `encryption` is given (its wrapped key stored first, every record sealed for its object).
 */
export async function copyToS3(
  url: string,
  credentials: S3Credentials,
  entries: Iterable<BackupEntry>,
  policy: S3RetryPolicy = DEFAULT_S3_POLICY,
  encryption?: NewEncryption,
): Promise<void> {
  const client = new S3Client(s3Url(url), credentials, policy.timeoutMs);
  const prefix = client.url.prefix;
  const backupId = encryption?.backupId ?? newBackupId();
  const release = await claimPrefix(client, url, backupId, policy, "Cannot upgrade backup");
  const key = encryption?.key;
  /** A record of `pending` framed, sealed for the object at `place` in an encrypted copy. */
  const frame = (p: Pending, place: Omit<ObjectPlace, "backupId">, offset: number) =>
    frameRecord(
      RecordKind.Change,
      p.version,
      p.payload,
      key && { cipher: objectCipher(key, { backupId, ...place }), offset },
    );
  const stored: string[] = [];
  const put = async (key: string, bytes: Uint8Array) => {
    // A retry that finds its own earlier write landed counts it as done.
    await putNew(client, key, bytes, key, policy, () => {});
    stored.push(key);
  };
  const tmp = makeScratchDir("s3-copy");
  const snapshotPath = `${tmp}/snapshot.sqlite3`;
  let snapshot: Deno.FsFile | undefined;
  let pending: Pending[] = [];
  let pendingBytes = 0;
  let seq = 0;
  const flush = async (upTo: number) => {
    const batch = pending.slice(0, upTo);
    if (batch.length === 0) return;
    const header = encodeSegmentHeader({
      kind: SegmentKind.Log,
      number: batch[0].seq,
      backupId,
      firstLog: 0,
      keyId: key?.id,
    });
    const last = batch.at(-1)!;
    const place = { kind: ObjectKind.Pack, first: batch[0].seq, second: last.seq };
    const pack = new Uint8Array(header.length + batch.reduce((n, p) => n + p.length, 0));
    pack.set(header);
    let at = header.length;
    for (const p of batch) {
      pack.set(frame(p, place, at), at);
      at += p.length;
    }
    await put(packKey(prefix, batch[0].seq, last.seq, last.version), pack);
    pending = pending.slice(upTo);
    pendingBytes = pending.reduce((n, p) => n + p.length, 0);
  };
  try {
    if (encryption) await put(wrappedKeyKey(prefix), encryption.wrappedKey);
    for (const entry of entries) {
      if (entry.kind === "snapshot-part") {
        snapshot ??= Deno.openSync(snapshotPath, { write: true, create: true, truncate: true });
        writeAll(snapshot, entry.bytes);
      } else if (entry.kind === "snapshot-end") {
        snapshot?.close();
        snapshot = undefined;
        // The base covers every change so far: those not stored yet need not be.
        pending = [];
        pendingBytes = 0;
        const source = { version: entry.version, path: snapshotPath };
        stored.push(await uploadBase(client, source, { backupId, seq, key }, policy));
        Deno.removeSync(snapshotPath);
      } else if (entry.kind === "change") {
        const payload = storePayload(entry.version, encodeStatements(entry.statements));
        const length = RECORD_HEADER_SIZE + payload.bytes.length + (key ? SEALED_OVERHEAD : 0);
        pending.push({ seq: ++seq, version: entry.version, payload, length });
        pendingBytes += length;
        if (pendingBytes >= PACK_BYTES) await flush(pending.length - 1);
      }
    }
    await flush(pending.length - 1);
    const newest = pending.at(-1);
    if (newest) {
      // On top of a pack or the base, which hold one generation of each record: 0.
      const link = 1;
      const place = changePlace(backupId, { seq: newest.seq, gen: 0 }, link);
      await put(
        changeKey(prefix, newest.seq, 0, newest.version),
        linkRecord(frame(newest, place, 0), link),
      );
    }
    await put(idKey(prefix), backupId);
  } catch (error) {
    for (const key of stored) await client.delete(key).catch(() => {});
    await release();
    throw error;
  } finally {
    snapshot?.close();
    removeScratchDir(tmp);
  }
}
