/**
 * What a backup restores to, as a dump to compare: restored into a scratch file, dumped, and
 * the file removed.
 *
 * @module
 */
import { openReader } from "../../lib/backends/open.ts";
import { restoreBackup } from "../../lib/backup/restore.ts";
import { dumpDatabase } from "./dump.ts";

/** The dump of the backup at `url` restored (to `toVersion`, when given) in `scratch`. */
export function restoredDump(url: string, scratch: string, toVersion?: number): string {
  const reader = openReader(url);
  try {
    const result = restoreBackup(reader, `${scratch}/restored-${crypto.randomUUID()}.sqlite3`, {
      toVersion,
    });
    const dump = dumpDatabase(result.path);
    Deno.removeSync(result.path);
    return dump;
  } finally {
    reader.close();
  }
}
