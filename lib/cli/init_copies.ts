/**
 * The other destinations init makes beside the backup (`--mirror`, `--async`), each from the
 * same snapshot of the node's database.
 *
 * @module
 */
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { fileBackupPath, type Output } from "./args.ts";
import { createBackupFrom, INIT_ACTION as ACTION } from "./new_backup.ts";
import { destinationBackupId } from "./copy_id.ts";
import type { LockFile } from "../backup/lock_file.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { shellQuote } from "../fs/shell_quote.ts";

/** The other destinations `--mirror` and `--async` name. */
export function initCopies(
  values: Record<string, unknown>,
): { mirrors: string[]; asyncs: string[] } {
  const list = (name: string) => (values[name] as string[] | undefined) ?? [];
  return { mirrors: list("mirror"), asyncs: list("async") };
}

/** Creates one more destination from the same snapshot of `database`; returns its version. */
async function createCopy(copy: string, database: string, dir: string): Promise<number> {
  if (parseBackupUrl(copy).scheme === "file") {
    const path = fileBackupPath(copy, ACTION);
    if (existsSync(path)) {
      throw new Error(
        `${ACTION}: "${path}" already exists: choose a new path, or remove it if it is not ` +
          `a backup you need`,
      );
    }
  }
  return await createBackupFrom(database, copy, dir);
}

/** The copies init made: what to remove should a later step fail, and their ties. */
export interface MadeCopies {
  undo: () => void;
  /** `lock` with each copy's backup id in `backup_ids` (lib/cli/copy_id.ts). */
  tied(lock: LockFile): LockFile;
}

/**
 * Creates the other destinations, each from the same snapshot (lightningd is stopped, so the
 * database does not change), and reads each one's backup id; on a failure removes the file
 * ones made and says which remote ones stay.
 */
export async function createCopies(
  copies: string[],
  database: string,
  dir: string,
  version: number,
  output: Output,
): Promise<MadeCopies> {
  const made: string[] = [];
  const ids: Record<string, string> = {};
  const undo = () => {
    for (const copy of made) {
      const parsed = parseBackupUrl(copy);
      if (parsed.scheme === "file") removeIfExists(parsed.path);
    }
  };
  try {
    for (const copy of copies) {
      const copyVersion = await createCopy(copy, database, dir);
      made.push(copy);
      if (copyVersion !== version) {
        throw new Error(
          `${ACTION}: ${copy} was made at version ${copyVersion}, not ${version}: the ` +
            `database changed (is lightningd running?)`,
        );
      }
      const id = await destinationBackupId(copy, dir).catch((error: Error) => {
        // The copy works untied, as one made before ids were recorded; mirror ties it.
        output.err(
          `Could not read the backup id of ${copy} (${error.message}): tie it later with ` +
            `"${cliCommand("mirror", `${shellQuote(copy)} --lightning-dir ${shellQuote(dir)}`)}"`,
        );
        return undefined;
      });
      if (id !== undefined) ids[copy] = id;
      output.out(`Created the copy ${copy} at version ${version}`);
    }
  } catch (error) {
    undo();
    const kept = made.filter((copy) => parseBackupUrl(copy).scheme !== "file");
    const note = kept.length === 0
      ? ""
      : ` (made and left in place, move them aside before a retry: ${kept.join(", ")})`;
    throw new Error(`${(error as Error).message}${note}`);
  }
  return {
    undo,
    tied: (lock) => Object.keys(ids).length === 0 ? lock : { ...lock, backup_ids: ids },
  };
}
