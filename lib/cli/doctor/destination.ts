/**
 * Where a file backup lives on this machine: the nearest existing directory at or above its
 * path (init may not have made it yet). Remote backups have none.
 *
 * @module
 */
import { dirname } from "node:path";
import { statIfExists } from "../../fs/exists.ts";
import type { Found } from "./check.ts";

export function backupDestination(found: Found): string | undefined {
  if (found.url?.scheme !== "file") return undefined;
  return placeOf(found.url.path);
}

/** The nearest existing directory at or above the file backup path `path`. */
export function placeOf(path: string): string {
  let at = path;
  while (!statIfExists(at) && dirname(at) !== at) at = dirname(at);
  return at;
}
