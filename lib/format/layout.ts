/**
 * The files of a cln-backup directory (see docs/FORMAT.md):
 *
 * - `base-<version>.clnb`: a sealed snapshot of the database at that version;
 * - `log-<sequence>.clnb`: changes, in order (lib/format/chain.ts says which one is live);
 * - `LOCK`: held by the one process that writes.
 *
 * @module
 */

import { CorruptBackupError } from "./segment.ts";

export const LOCK_NAME = "LOCK";
const PAD = 20;

export function logName(sequence: number): string {
  return `log-${String(sequence).padStart(PAD, "0")}.clnb`;
}

export function baseName(version: number): string {
  return `base-${String(version).padStart(PAD, "0")}.clnb`;
}

export interface Layout {
  /** Snapshot versions, ascending. */
  bases: { version: number; path: string }[];
  /** Log segments, ascending. */
  logs: { sequence: number; path: string }[];
  /** Leftovers of a write interrupted by a crash. */
  temporaries: string[];
}

const SEGMENT = /^(base|log)-(\d{20})\.clnb$/;

/** Whether `name` is named like a segment (`base-…clnb`, `log-…clnb`). */
export function isSegmentName(name: string): boolean {
  return SEGMENT.test(name);
}

function fileType(entry: Deno.DirEntry): string {
  if (entry.isSymlink) return "a symlink";
  return entry.isDirectory ? "a directory" : "a FIFO, socket or device";
}

/**
 * Lists a backup directory's segments in order. An entry named like a segment that is not a
 * regular file (a symlink, a FIFO) is refused: skipping it would hide a missing segment, and
 * opening it could hang or read outside the backup.
 */
export function readLayout(dir: string): Layout {
  const layout: Layout = { bases: [], logs: [], temporaries: [] };
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    // A write's temporary file, or the directory a compaction builds its database in.
    if (entry.name.endsWith(".tmp")) {
      layout.temporaries.push(path);
      continue;
    }
    const match = SEGMENT.exec(entry.name);
    if (!match) continue;
    if (!entry.isFile) {
      throw new CorruptBackupError(path, undefined, `${fileType(entry)}, not a segment file,`);
    }
    const number = Number(match[2]);
    if (!Number.isSafeInteger(number)) {
      throw new CorruptBackupError(path, undefined, "a segment number out of range");
    }
    if (match[1] === "base") layout.bases.push({ version: number, path });
    else layout.logs.push({ sequence: number, path });
  }
  layout.bases.sort((a, b) => a.version - b.version);
  layout.logs.sort((a, b) => a.sequence - b.sequence);
  return layout;
}
