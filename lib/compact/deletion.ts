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
import { baseName, isSegmentName, logName } from "../format/layout.ts";
import { readChain } from "../format/chain.ts";

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
 * segment names are honoured, so a damaged or planted plan cannot delete anything else, and
 * only when the backup does not need them: a plan copied in with another backup's files (or
 * an old copy's) is refused, deleting nothing.
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
    const planned = names.filter((name): name is string =>
      typeof name === "string" && isSegmentName(name) && existsSync(`${dir}/${name}`)
    );
    const needed = planned.find(neededBy(dir, planned));
    if (needed !== undefined) {
      throw new Error(
        `Cannot open backup: a compaction plan that would delete "${needed}", which the ` +
          `backup still needs, at "${plan}": it was not written for these segments (copied ` +
          `in with another backup's files, or an old copy's): remove it, then open the ` +
          `backup again`,
      );
    }
    for (const name of planned) {
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

/**
 * Which of `planned` the backup in `dir` still needs: a compaction plans only bases older than
 * one that stays, and logs before the one the oldest base that stays continues in.
 */
function neededBy(dir: string, planned: readonly string[]): (name: string) => boolean {
  // The chain's logs are those from the oldest base's first on, which holds the kept one's.
  const { bases, logs } = readChain(dir);
  const kept = bases.find((b) => !planned.includes(baseName(b.number)));
  if (!kept) return () => true;
  return (name) =>
    bases.some((b) => b.number > kept.number && baseName(b.number) === name) ||
    logs.some((l) => l.number >= kept.header.firstLog && logName(l.number) === name);
}
