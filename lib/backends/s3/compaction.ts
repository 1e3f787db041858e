/**
 * Compacting an S3 backup: the records up to the one before the newest change object are
 * folded into a new base, uploaded in parts, and only once S3 lists it are the objects it
 * covers deleted, with the older bases. Objects are never changed, so every step is
 * crash-safe by the layout's rules (layout.ts): readers take the newest base, and what a
 * base covers is garbage, which the next compaction or packer deletes.
 *
 * 1. spool the backup (S3BackupReader): the newest base, the records after it; the newest
 *    record stays on top, so the plugin can still drop it (a rewind);
 * 2. rebuild the database at the version of the record before it (see
 *    {@linkcode foldPoint}), in a temporary directory, and move it into a base;
 * 3. upload it as `base-<version>-<seq>` (a multipart upload: S3 shows it whole or not at
 *    all);
 * 4. list again: it must be the newest base; then delete what it covers.
 *
 * @module
 */
import type { CompactionPhase, CompactionResult, CompactionStats } from "../../compact/compact.ts";
import { moveIntoBase } from "../../compact/move_into_base.ts";
import { heldStats } from "../../compact/version_count.ts";
import { Pacer } from "../../compact/pacer.ts";
import { baseName } from "../../format/layout.ts";
import { restoreBackup } from "../../backup/restore.ts";
import { S3Client, type S3Credentials } from "./client.ts";
import type { Upload } from "./xml.ts";
import { baseKey } from "./keys.ts";
import { readLayout, type S3Layout } from "./layout.ts";
import { readBackupId, s3Url } from "./backend.ts";
import { S3BackupReader } from "./reader.ts";
import { s3BasePlace, uploadFile } from "./create.ts";
import type { DataKey } from "../../crypto/data_key.ts";
import { DEFAULT_S3_POLICY, retrying, type S3RetryPolicy } from "./retry.ts";
import { makeScratchDir, removeScratchDir } from "../../fs/scratch_dir.ts";

export interface S3CompactOptions {
  policy?: S3RetryPolicy;
  /**
   * A directory of the compaction's own for its temporary files, emptied first (of what a
   * stopped compaction left); the system's temporary directory else.
   */
  scratch?: string;
  onProgress?: (phase: CompactionPhase, version: number) => void;
  /**
   * An encrypted backup's data key: the compaction opens every record with it and seals the
   * new base (it runs where the key is: the plugin, or the CLI).
   */
  key?: DataKey;
  /**
   * The keys to take once S3 refuses `credentials`: the plugin's keys' file as it read when
   * the compaction started (keys rotated while the writer, idle, holds the old ones).
   */
  renewCredentials?: () => S3Credentials;
  /** Test seam: a crash between the steps, named as the file compaction's are. */
  crashAt?: (step: "base-uploaded" | "deleted-one") => void;
}

/**
 * Size and versions held, as `backup-compact` reports them: every object's bytes; each change
 * after the newest base (`records`), and each base object once (`versionCount`).
 */
function held(layout: S3Layout): CompactionStats {
  return heldStats(layout.bytes, { changes: layout.records, snapshots: layout.bases.length });
}

/**
 * Where a compaction folds up to, from the spooled records after the newest base (their
 * versions, in sequence order): the version of the record before the newest, which is never
 * folded (a rewind may supersede it). The base ends at the first record of that version, so
 * the PRAGMA-only hooks that repeat it (a migration's `PRAGMA foreign_keys = OFF`, say) stay
 * after the base, where a restore replays them before what follows them.
 */
function foldPoint(
  versions: readonly number[],
  base: { seq: number; version: number },
): { seq: number; version: number } | undefined {
  if (versions.length < 2) return undefined;
  const version = versions[versions.length - 2];
  if (version <= base.version) return undefined;
  return { seq: base.seq + 1 + versions.indexOf(version), version };
}

/** Empties the plugin's scratch directory: what a stopped compaction left there. */
function clearScratch(scratch: string): void {
  Deno.mkdirSync(scratch, { recursive: true });
  for (const entry of Deno.readDirSync(scratch)) {
    Deno.removeSync(`${scratch}/${entry.name}`, { recursive: true });
  }
}

/**
 * Aborts the unfinished uploads of bases under the prefix: a compaction killed mid-upload
 * leaves its parts, which S3 keeps (and bills) until aborted. One running beside this one
 * (the CLI's and the plugin's) then fails before it deletes anything.
 */
async function abortLeftUploads(client: S3Client, policy: S3RetryPolicy): Promise<void> {
  const prefix = `${client.url.prefix}base-`;
  const uploads: Upload[] = [];
  await retrying("listing unfinished uploads", policy, () => {}, async () => {
    uploads.length = 0;
    for await (const page of client.listMultipart(prefix)) uploads.push(...page);
  });
  for (const { key, uploadId } of uploads) {
    await retrying(
      `aborting the upload of ${key}`,
      policy,
      () => {},
      () => client.abortMultipart(key, uploadId),
    );
  }
}

/** Compacts the S3 backup at `url`; see the module's steps. */
export async function compactS3(
  url: string,
  credentials: S3Credentials,
  options: S3CompactOptions = {},
): Promise<CompactionResult> {
  const started = performance.now();
  const policy = options.policy ?? DEFAULT_S3_POLICY;
  const client = new S3Client(
    s3Url(url),
    credentials,
    policy.timeoutMs,
    options.renewCredentials,
  );
  const list = () =>
    retrying(
      "listing the backup",
      policy,
      () => {},
      () => readLayout(client),
    );
  const backupId = await retrying(
    "reading the backup id",
    policy,
    () => {},
    () => readBackupId(client, url),
  );
  const before = await list();
  if (options.scratch) clearScratch(options.scratch);
  await abortLeftUploads(client, policy);
  let fold: { seq: number; version: number } | undefined;
  const tmp = makeScratchDir("s3-compact", options.scratch);
  try {
    const database = `${tmp}/database.sqlite3`;
    const key = options.key;
    const unlock = key && (() => Promise.resolve(key));
    // The keys S3 took so far: the ones read again, if it refused those given.
    const keys = client.credentials;
    const reader = await S3BackupReader.fetch(url, keys, policy, options.scratch, unlock);
    try {
      const base = reader.layout.bases.at(-1);
      fold = foldPoint(reader.recordVersions(), {
        seq: base?.seq ?? 0,
        version: base?.version ?? 0,
      });
      if (fold) {
        const restored = restoreBackup(reader, database, {
          toVersion: fold.version,
          durable: false,
          onProgress: (version) => options.onProgress?.("restore", version),
        });
        if (restored.version !== fold.version) {
          throw new Error(
            `Cannot compact backup: it rebuilt version ${restored.version}, not ` +
              `${fold.version}: the backup changed meanwhile; run the compaction again`,
          );
        }
      }
    } finally {
      // The spool goes before the base is written: the disk holds one of them at a time.
      reader.close();
    }
    if (fold) {
      options.onProgress?.("base", fold.version);
      const place = s3BasePlace(backupId, fold.version, fold.seq, options.key);
      moveIntoBase(tmp, database, fold.version, place, new Pacer());
      const key = baseKey(client.url.prefix, fold.version, fold.seq);
      await uploadFile(client, key, `${tmp}/${baseName(fold.version)}`, policy);
    }
  } finally {
    removeScratchDir(tmp);
  }
  options.crashAt?.("base-uploaded");
  options.onProgress?.("cleanup", fold?.version ?? before.version);
  const now = await list();
  const key = fold && baseKey(client.url.prefix, fold.version, fold.seq);
  if (key && now.bases.at(-1)?.key !== key) {
    throw new Error(
      `Cannot compact backup: the new base "${key}" is not the newest S3 lists (another ` +
        `compaction ran meanwhile?); nothing was deleted: run the compaction again`,
    );
  }
  // The newest base covers every record up to its sequence and the older bases; without a
  // new one, this deletes what an interrupted compaction left. Change objects a pack past it
  // holds are not garbage: a packer beside this one may not have read that pack back yet.
  const doomed = [...now.garbage, ...now.bases.slice(0, -1)];
  for (const entry of doomed) {
    await retrying(`deleting ${entry.key}`, policy, () => {}, () => client.delete(entry.key));
    options.crashAt?.("deleted-one");
  }
  // Of the bases, only the newest is left.
  const after = heldStats(now.bytes - doomed.reduce((sum, e) => sum + e.size, 0), {
    changes: now.records,
    snapshots: Math.min(1, now.bases.length),
  });
  const baseSeq = before.bases.at(-1)?.seq ?? 0;
  return {
    before: held(before),
    after,
    base_version: fold?.version ?? null,
    versions_folded: fold ? fold.seq - baseSeq : 0,
    bytes_freed: before.bytes - after.backupsize,
    seconds: Math.round(performance.now() - started) / 1000,
  };
}
