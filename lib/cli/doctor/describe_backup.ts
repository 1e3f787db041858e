/**
 * Opens a backup read-only just long enough to describe it.
 *
 * @module
 */
import type { BackupDescription, BackupReader } from "../../backends/backend.ts";
import { openReader } from "../../backends/open.ts";
import { readBesideCompaction } from "../../backends/file/read_beside_compaction.ts";

/**
 * The backup at `url` described; a file backup the plugin compacts meanwhile is described
 * again, not called damaged. `open` is the seam tests use to reach the reader.
 */
export function describeBackup(
  url: string,
  open: (url: string) => BackupReader = openReader,
): BackupDescription {
  const reader = open(url);
  try {
    return readBesideCompaction(reader, () => reader.describe());
  } finally {
    reader.close();
  }
}
