/**
 * A new S3 backup holding what another backup holds (upgrade): each snapshot uploaded as a
 * base, the changes after it in packs of up to 16 MiB, the newest change in an object of
 * its own (as the plugin's writer leaves it), and `backup-id` last, so an interrupted copy
 * leaves no backup.
 *
 * @module
 */
import type { BackupEntry } from "../backend.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../../format/record.ts";
import { encodeSegmentHeader, newBackupId, SegmentKind } from "../../format/segment.ts";
import { writeAll } from "../../fs/durable.ts";
import { S3Client, type S3Credentials } from "./client.ts";
import { changeKey, idKey, packKey } from "./keys.ts";
import { putNew, s3Url } from "./backend.ts";
import { checkEmptyPrefix, uploadBase } from "./create.ts";
import { DEFAULT_S3_POLICY, type S3RetryPolicy } from "./retry.ts";

const PACK_BYTES = 16 * 1024 * 1024;

interface Pending {
  seq: number;
  version: number;
  record: Uint8Array;
}

/** Copies `entries` (a reader's, in restore order) into a new backup at `url`. */
export async function copyToS3(
  url: string,
  credentials: S3Credentials,
  entries: Iterable<BackupEntry>,
  policy: S3RetryPolicy = DEFAULT_S3_POLICY,
): Promise<void> {
  const client = new S3Client(s3Url(url), credentials, policy.timeoutMs);
  const prefix = client.url.prefix;
  await checkEmptyPrefix(client, url, policy, "Cannot upgrade backup");
  const backupId = newBackupId();
  const stored: string[] = [];
  const put = async (key: string, bytes: Uint8Array) => {
    // A retry that finds its own earlier write landed counts it as done.
    await putNew(client, key, bytes, key, policy, () => {});
    stored.push(key);
  };
  const tmp = Deno.makeTempDirSync({ prefix: "cln-backup-s3-copy-" });
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
    });
    const pack = new Uint8Array(header.length + batch.reduce((n, p) => n + p.record.length, 0));
    pack.set(header);
    let at = header.length;
    for (const { record } of batch) {
      pack.set(record, at);
      at += record.length;
    }
    const last = batch.at(-1)!;
    await put(packKey(prefix, batch[0].seq, last.seq, last.version), pack);
    pending = pending.slice(upTo);
    pendingBytes = pending.reduce((n, p) => n + p.record.length, 0);
  };
  try {
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
        stored.push(await uploadBase(client, source, { backupId, seq }, policy));
        Deno.removeSync(snapshotPath);
      } else if (entry.kind === "change") {
        const record = encodeRecord(
          RecordKind.Change,
          entry.version,
          encodeStatements(entry.statements),
        );
        pending.push({ seq: ++seq, version: entry.version, record });
        pendingBytes += record.length;
        if (pendingBytes >= PACK_BYTES) await flush(pending.length - 1);
      }
    }
    await flush(pending.length - 1);
    const newest = pending.at(-1);
    if (newest) await put(changeKey(prefix, newest.seq, 0, newest.version), newest.record);
    await put(idKey(prefix), backupId);
  } catch (error) {
    for (const key of stored) await client.delete(key).catch(() => {});
    throw error;
  } finally {
    snapshot?.close();
    Deno.removeSync(tmp, { recursive: true });
  }
}
