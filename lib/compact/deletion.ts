/**
 * The deletes that end a compaction, made crash-safe: the list of segments to delete is
 * written durably first, so an open after a crash finishes exactly those deletes rather than
 * guess them (which bases to keep depends on a retention setting the next opener may not
 * know).
 *
 * Segments are deleted oldest first, so what a crash leaves is always a contiguous run.
 *
 * @module
 */
import { syncDir, writeFileDurably } from "../fs/durable.ts";
import { existsSync } from "../fs/exists.ts";
import { atStep } from "../fs/step_seam.ts";
import { isSegmentName } from "../format/layout.ts";

export const DELETION_PLAN = "compaction.plan";

/** Deletes the named segments of `dir`, oldest first, after recording the plan durably. */
export function deleteSegments(dir: string, names: readonly string[]): void {
  if (names.length === 0) return;
  writeFileDurably(
    dir,
    DELETION_PLAN,
    new TextEncoder().encode(JSON.stringify({ delete: names })),
  );
  finishDeletion(dir);
}

/**
 * Finishes the deletes of an interrupted compaction, if any; returns the names deleted. Only
 * segment names are honoured, so a damaged or planted plan cannot delete anything else.
 */
export function finishDeletion(dir: string): string[] {
  const plan = `${dir}/${DELETION_PLAN}`;
  if (!existsSync(plan)) return [];
  let names: unknown;
  try {
    names = JSON.parse(Deno.readTextFileSync(plan)).delete;
  } catch {
    names = undefined; // Not a plan this tool wrote (it renames whole ones into place).
  }
  const deleted: string[] = [];
  if (Array.isArray(names)) {
    for (const name of names) {
      if (typeof name !== "string" || !isSegmentName(name)) continue;
      if (!existsSync(`${dir}/${name}`)) continue;
      Deno.removeSync(`${dir}/${name}`);
      deleted.push(name);
      atStep("compact-mid-delete");
    }
    syncDir(dir);
  }
  Deno.removeSync(plan);
  syncDir(dir);
  return deleted;
}
