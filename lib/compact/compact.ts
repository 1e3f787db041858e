/**
 * Compaction of a file backup: folds the changes up to a version into a new base, then
 * deletes what that base makes redundant.
 *
 * It reads only what the writer no longer changes (sealed segments, and the live log below
 * its last record), so it can run beside a plugin that keeps appending: the newest change
 * stays in the live log on top of the new base, and the one rewind stays possible. Every
 * step is crash-safe: the base is built under a temporary name, synced and renamed into
 * place before anything is deleted, and the deletes are planned durably first
 * (deletion.ts), so the next open finishes an interrupted one.
 *
 * @module
 */
import { FileBackupReader } from "../backends/file/reader.ts";
import { scanWith } from "../backends/file/encryption.ts";
import { baseName } from "../format/layout.ts";
import { readChain } from "../format/chain.ts";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { restoreBackup } from "../backup/restore.ts";
import { atStep } from "../fs/step_seam.ts";
import { Interrupted } from "../fs/interrupt.ts";
import { workPath } from "../fs/work_path.ts";
import { continuingLog, DEFAULT_RETAIN_BASES, redundantSegments } from "./plan.ts";
import { deleteSegments } from "./deletion.ts";
import { moveIntoBase } from "./move_into_base.ts";
import { Pacer } from "./pacer.ts";
import { basename } from "node:path";
import type { DataKey } from "../crypto/data_key.ts";
import type { CompactableBackend } from "./compactor.ts";
import { isOutOfRoom } from "../fs/os_error.ts";
import { compactionResult } from "./result.ts";

/** Size and versions held, as the Python plugin's `backup-compact` reports them. */
export interface CompactionStats {
  /** Bytes the backup holds. */
  backupsize: number;
  /**
   * Versions it holds, counted as the Python plugin counts the records of its `.dbak`: each
   * change held, plus one per snapshot (base) held, however many parts it is stored in. A
   * log's seal is no change and is not counted ({@linkcode versionCount}).
   */
  version_count: number;
}

/** What a compaction did: the Python plugin's fields, then ours. */
export interface CompactionResult {
  /** The backup's size and records before the compaction. */
  before: CompactionStats;
  /** Its size and records after. */
  after: CompactionStats;
  /** The version of the new base (`null` when there was nothing to fold). */
  base_version: number | null;
  /** Changes folded into the new base. */
  versions_folded: number;
  /** Bytes the backup shrank by (0 when it grew meanwhile). */
  bytes_freed: number;
  /** How long the compaction took, in seconds. */
  seconds: number;
}

/**
 * What {@linkcode compactBackup} did. The sizes before and after come from the writer, which
 * keeps count as it appends ({@linkcode compactionResult}): counting them from the files
 * would read the whole backup twice.
 */
export type CompactionWork = Pick<CompactionResult, "base_version" | "versions_folded" | "seconds">;

/**
 * A compaction's step: restoring the database up to the target, writing it as the new base, or
 * deleting what the bases kept no longer need.
 */
export type CompactionPhase = "restore" | "base" | "cleanup";

/** What {@linkcode compactBackup} folds and keeps, and its seams. */
export interface CompactOptions {
  /** Fold every change up to this version; the changes above it stay in the log. */
  target: number;
  /** Bases to keep, each with the logs after it (point-in-time restores). */
  retain?: number;
  /** Told each phase as it starts, and now and then during the restore the version it reached. */
  onProgress?: (phase: CompactionPhase, version: number) => void;
  /** Milliseconds, monotonic (a seam for tests). */
  now?: () => number;
  /** Paces the base's writes (see pacer.ts). */
  pacer?: Pacer;
  /** An encrypted backup's data key: it reads the records and seals the new base. */
  key?: DataKey;
  /** The node is stopped (`compact` on the command line): a failure says so, not that it runs. */
  nodeStopped?: boolean;
}

/** Where a compaction builds its database; a `.tmp` name, so an open after a crash removes it. */
function scratchDir(dir: string): string {
  return `${dir}/compacting-${Deno.pid}.tmp`;
}

/** A failure's own words, without the "Cannot <verb> <noun>: " a message may start with. */
function reason(error: unknown): string {
  return (error as Error).message.replace(/^Cannot \w+ \w+: /, "");
}

/**
 * Compacts the backup directory `dir` up to `options.target`. Besides the backup, it needs
 * room for the new base's database at most (see move_into_base.ts).
 */
export function compactBackup(url: string, dir: string, options: CompactOptions): CompactionWork {
  const now = options.now ?? (() => performance.now());
  const started = now();
  const start = readChain(dir);
  const newest = start.bases.at(-1)?.number ?? 0;
  // What it adds is owned as the newest log: the plugin's user must open or remove it, even
  // after a compaction run as root.
  const like = start.logs.at(-1)?.path;
  let folded = 0;
  let baseVersion: number | null = null;
  if (options.target > newest && !existsSync(`${dir}/${baseName(options.target)}`)) {
    const scratch = scratchDir(dir);
    const pacer = options.pacer ?? new Pacer();
    // The database being built, synced every thousand changes (restore's progress calls) so
    // that the kernel never has hundreds of MiB of it to write back at once.
    let building: Deno.FsFile | undefined;
    removeIfExists(scratch);
    try {
      // The node's database is restored in it (an encrypted backup's in plaintext): its
      // owner's alone, as a restore's work directory is, whatever the umask. Not given to the
      // logs' owner: it would swap what root then opens by name there for a symlink.
      Deno.mkdirSync(scratch, { mode: 0o700 });
      const database = `${scratch}/lightningd.sqlite3`;
      // Read on this thread, not ahead in another: on a node's few cores a second busy thread
      // competes with the plugin's hooks (measured on 2 cores: peak RSS 208 and 213 MiB
      // against 267, throughput no lower).
      const reader = new FileBackupReader(url, dir, { key: options.key, readAheadFrom: Infinity });
      const restored = restoreBackup(reader, database, {
        toVersion: options.target,
        onProgress: (version) => {
          building ??= Deno.openSync(workPath(database, "restoring"), { read: true });
          pacer.sync(building);
          options.onProgress?.("restore", version);
        },
        durable: false,
      });
      building?.close();
      building = undefined;
      options.onProgress?.("base", options.target);
      // Read after the restore: a roll meanwhile only adds logs after the one it continues in.
      const chain = readChain(dir);
      moveIntoBase(
        dir,
        restored.path,
        options.target,
        {
          backupId: chain.backupId,
          firstLog: continuingLog(chain, options.target, scanWith(options.key, true)),
          key: options.key,
        },
        pacer,
        like,
      );
      atStep("compact-after-base");
      folded = restored.changes;
      baseVersion = options.target;
    } catch (error) {
      // A partial base goes (only ours: the writer makes its own temporaries meanwhile).
      const partial = `${dir}/${baseName(options.target)}.tmp`;
      removeIfExists(partial);
      if (error instanceof Interrupted) throw error;
      // The room it needs is named only when room ran out: not after damage, say.
      const unchanged = !options.nodeStopped
        ? "the backup is unchanged and the node keeps running"
        : isOutOfRoom(error)
        ? "the backup is unchanged (a compaction needs room for one more copy of the database " +
          "beside it)"
        : "the backup is unchanged";
      throw new Error(
        `Cannot compact backup: ${reason(error)} (building the base at version ` +
          `${options.target} in "${dir}"); ${unchanged}`,
      );
    } finally {
      building?.close();
      removeIfExists(scratch);
    }
  }
  options.onProgress?.("cleanup", options.target);
  const redundant = redundantSegments(readChain(dir), options.retain ?? DEFAULT_RETAIN_BASES);
  try {
    deleteSegments(dir, redundant.map((path) => basename(path)));
  } catch (error) {
    if (error instanceof Interrupted) throw error;
    // The base is durable and the deletes are planned first: nothing needed is gone.
    throw new Error(
      `Cannot compact backup: ${reason(error)} (deleting the segments its bases no longer ` +
        `need, in "${dir}"); the backup restores as it stands, and the next compaction ` +
        `deletes them: free space or fix the disk`,
    );
  }
  return {
    base_version: baseVersion,
    versions_folded: folded,
    seconds: Math.round(now() - started) / 1000,
  };
}

/**
 * Compacts in the writer's own thread (a stopped node's backup, or a test): the sizes come
 * from `writer` before and after, and it takes note of what changed.
 */
export function compactWithWriter(
  writer: CompactableBackend,
  options: CompactOptions,
): CompactionResult {
  const before = writer.heldStats();
  const work = compactBackup(writer.url, writer.dir, options);
  writer.compacted();
  return compactionResult(before, writer.heldStats(), work);
}
