/**
 * Compacting an S3 backup: the records up to the one before the newest change object are
 * folded into a new base, uploaded in parts, and only once S3 lists it are the objects it
 * covers deleted, with the older bases. Objects are never changed, so every step is
 * crash-safe by the layout's rules (layout.ts): readers take the newest base, and what a
 * base covers is garbage, which the next compaction or packer deletes.
 *
 * 1. list: the newest base, the records after it; the newest change object stays on top,
 *    so the plugin can still drop it (a rewind);
 * 2. rebuild the database at the version of the record before it, from a spool of the
 *    backup (S3BackupReader), in a temporary directory;
 * 3. upload it as `base-<version>-<seq>` (a multipart upload: S3 shows it whole or not at
 *    all);
 * 4. list again: it must be the newest base; then delete what it covers.
 *
 * @module
 */
import type { CompactionPhase, CompactionResult, CompactionStats } from "../../compact/compact.ts";
import { writeBase } from "../file/create.ts";
import { baseName } from "../../format/layout.ts";
import { restoreBackup } from "../../backup/restore.ts";
import { S3Client, type S3Credentials } from "./client.ts";
import { baseKey } from "./keys.ts";
import { lastSeqOf, listBackup, resolveLayout, type S3Layout } from "./layout.ts";
import { readBackupId, s3Url } from "./backend.ts";
import { S3BackupReader } from "./reader.ts";
import { uploadFile } from "./create.ts";
import { DEFAULT_S3_POLICY, retrying, type S3RetryPolicy } from "./retry.ts";

/**
 * The plugin's scratch directory for an S3 compaction, in the lightning dir: the one place
 * its launcher lets it write (the rebuilt database and the new base, until uploaded).
 */
export const SCRATCH_DIR = "cln-backup-scratch";

export interface S3CompactOptions {
  policy?: S3RetryPolicy;
  /** Where the temporary files go (made if missing); the system's temporary directory else. */
  scratch?: string;
  onProgress?: (phase: CompactionPhase, version: number) => void;
  /** Test seam: a crash between the steps, named as the file compaction's are. */
  crashAt?: (step: "base-uploaded" | "deleted-one") => void;
}

/** Size and records held, as `backup-compact` reports them: every object, every record. */
function held(layout: S3Layout): CompactionStats {
  return { backupsize: layout.bytes, version_count: layout.records + layout.bases.length };
}

/** Where a compaction may fold up to: the end of the source before the newest. */
export function foldPoint(layout: S3Layout): { seq: number; version: number } | undefined {
  const source = layout.sources.at(-2);
  return source && { seq: lastSeqOf(source), version: source.version };
}

/** Compacts the S3 backup at `url`; see the module's steps. */
export async function compactS3(
  url: string,
  credentials: S3Credentials,
  options: S3CompactOptions = {},
): Promise<CompactionResult & { base_seq: number | null }> {
  const started = performance.now();
  const policy = options.policy ?? DEFAULT_S3_POLICY;
  const client = new S3Client(s3Url(url), credentials, policy.timeoutMs);
  const list = () =>
    retrying(
      "listing the backup",
      policy,
      () => {},
      async () => resolveLayout(await listBackup(client)),
    );
  const backupId = await retrying(
    "reading the backup id",
    policy,
    () => {},
    () => readBackupId(client, url),
  );
  const before = await list();
  const seconds = () => Math.round(performance.now() - started) / 1000;
  const fold = foldPoint(before);
  const key = fold && baseKey(client.url.prefix, fold.version, fold.seq);
  if (fold && key && !before.bases.some((b) => b.key === key)) {
    if (options.scratch) Deno.mkdirSync(options.scratch, { recursive: true });
    const tmp = Deno.makeTempDirSync({ dir: options.scratch, prefix: "cln-backup-s3-compact-" });
    try {
      const reader = await S3BackupReader.fetch(url, credentials, policy, options.scratch);
      try {
        const database = `${tmp}/database.sqlite3`;
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
        options.onProgress?.("base", fold.version);
        writeBase(tmp, { version: fold.version, path: database }, {
          backupId,
          firstLog: fold.seq + 1,
        });
        Deno.removeSync(database);
        await uploadFile(client, key, `${tmp}/${baseName(fold.version)}`, policy);
      } finally {
        reader.close();
      }
    } finally {
      Deno.removeSync(tmp, { recursive: true });
    }
  }
  options.crashAt?.("base-uploaded");
  options.onProgress?.("cleanup", fold?.version ?? before.version);
  const now = await list();
  if (key && now.bases.at(-1)?.key !== key) {
    throw new Error(
      `Cannot compact backup: the new base "${key}" is not the newest S3 lists; nothing was ` +
        `deleted: run the compaction again`,
    );
  }
  // The new base covers every record up to its sequence and the older bases; without one,
  // this deletes what an interrupted compaction left.
  for (const entry of [...now.garbage, ...now.bases.slice(0, -1)]) {
    await retrying(`deleting ${entry.key}`, policy, () => {}, () => client.delete(entry.key));
    options.crashAt?.("deleted-one");
  }
  const after = held(await list());
  const baseSeq = before.bases.at(-1)?.seq ?? 0;
  return {
    before: held(before),
    after,
    base_version: fold?.version ?? null,
    base_seq: fold?.seq ?? null,
    versions_folded: fold ? fold.seq - baseSeq : 0,
    bytes_freed: before.bytes - after.backupsize,
    seconds: seconds(),
  };
}
