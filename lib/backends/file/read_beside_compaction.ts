/**
 * Reads of a file backup that a running plugin may compact meanwhile (`status`, `verify`, `doctor`,
 * `restore`): a compaction deletes the segments a read started from and rewrites the live log, so the read
 * fails (a missing file, a gap in the changes) although the backup is sound. Such a read is
 * made again while its segments keep changing under it; a failure on segments that stayed
 * the same is the backup's own.
 *
 * @module
 */
import type { BackupReader } from "../backend.ts";
import { readLayout } from "../../format/layout.ts";
import { Interrupted } from "../../fs/interrupt.ts";
import { FileBackupReader } from "./reader.ts";

/** Reads at most this often: a compaction comes minutes apart at the least. */
const ATTEMPTS = 3;

/**
 * The segments of `dir` by name and inode (a rewritten live log is a new file);
 * `undefined` when they cannot be listed, one vanishing as it is looked at.
 */
function segmentsOf(dir: string): string | undefined {
  try {
    const { bases, logs } = readLayout(dir);
    return [...bases, ...logs].map(({ path }) => `${path}@${Deno.lstatSync(path).ino}`).join();
  } catch {
    return undefined;
  }
}

/**
 * `read()` of the backup `reader` reads; for a file backup, made again when it failed while a
 * compaction changed it. Other backups are read once: no plugin compacts under them so.
 */
export function readBesideCompaction<T>(reader: BackupReader, read: () => T): T {
  if (!(reader instanceof FileBackupReader)) return read();
  for (let attempt = 1;; attempt++) {
    const before = segmentsOf(reader.dir);
    try {
      return read();
    } catch (error) {
      if (error instanceof Interrupted || attempt === ATTEMPTS) throw error;
      if (segmentsOf(reader.dir) === before) throw error;
    }
  }
}
