/**
 * The filesystem check: a backup on the database's own filesystem dies with its disk.
 *
 * @module
 */
import { statIfExists } from "../../fs/exists.ts";
import type { CheckResult, Found } from "./check.ts";
import { backupDestination } from "./destination.ts";
import type { DoctorSystem } from "./system.ts";

export function filesystemCheck(found: Found, system: DoctorSystem): CheckResult {
  const destination = backupDestination(found);
  if (!destination) return ["OK", "a remote backup, on another machine"];
  const { database } = found;
  const near = statIfExists(database) ? database : found.dir;
  let same: boolean;
  try {
    same = system.device(destination) === system.device(near);
  } catch (error) {
    return ["WARN", `cannot compare filesystems: ${(error as Error).message}`];
  }
  if (same) {
    return [
      "WARN",
      `the backup ("${destination}") is on the same filesystem as "${near}": one disk ` +
      `failure loses both: put the backup on another disk, or use a remote backup`,
    ];
  }
  return ["OK", `the backup is on another filesystem than the database`];
}
