/**
 * Opens a backup read-only just long enough to describe it.
 *
 * @module
 */
import type { BackupDescription } from "../../backends/backend.ts";
import { openReader } from "../../backends/open.ts";

export function describeBackup(url: string): BackupDescription {
  const reader = openReader(url);
  try {
    return reader.describe();
  } finally {
    reader.close();
  }
}
