/**
 * Where a file backup lives on this machine: the nearest existing directory at or above its
 * path (init may not have made it yet). Remote backups have none.
 *
 * @module
 */
import { placeOf } from "../../backup/same_disk.ts";
import type { Found } from "./check.ts";

export function backupDestination(found: Found): string | undefined {
  if (found.url?.scheme !== "file") return undefined;
  return placeOf(found.url.path);
}
