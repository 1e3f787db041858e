/**
 * The files of a cln-backup directory (see docs/FORMAT.md):
 *
 * - `base-<version>.clnb`: a sealed snapshot of the database at that version;
 * - `log-<sequence>.clnb`: changes, in order; the highest sequence is the live one;
 * - `LOCK`: held by the one process that writes.
 *
 * @module
 */

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

/** Lists a backup directory's segments in order. */
export function readLayout(dir: string): Layout {
  const layout: Layout = { bases: [], logs: [], temporaries: [] };
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    // A compaction builds its database in a `.tmp` directory.
    if (entry.name.endsWith(".tmp") && (entry.isFile || entry.isDirectory)) {
      layout.temporaries.push(path);
      continue;
    }
    if (!entry.isFile) continue;
    const match = SEGMENT.exec(entry.name);
    if (!match) continue;
    const number = Number(match[2]);
    if (match[1] === "base") layout.bases.push({ version: number, path });
    else layout.logs.push({ sequence: number, path });
  }
  layout.bases.sort((a, b) => a.version - b.version);
  layout.logs.sort((a, b) => a.sequence - b.sequence);
  return layout;
}
