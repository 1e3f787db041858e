/**
 * The free space check: the backup's filesystem can hold a snapshot of the database, and
 * better twice that, since the backup grows until it is compacted.
 *
 * @module
 */
import { DATABASE_NAME } from "../../backup/restore.ts";
import { statIfExists } from "../../fs/exists.ts";
import type { CheckResult, Found } from "./check.ts";
import { backupDestination } from "./destination.ts";
import { formatBytes } from "./format_bytes.ts";
import type { DoctorSystem } from "./system.ts";

export function freeSpaceCheck(found: Found, system: DoctorSystem): CheckResult {
  const destination = backupDestination(found);
  if (!destination) return ["OK", "a remote backup: check free space on the backup server"];
  const database = statIfExists(`${found.dir}/${DATABASE_NAME}`);
  const size = database?.size ?? 0;
  let free: number;
  try {
    free = system.freeBytes(destination);
  } catch (error) {
    return ["WARN", `cannot tell the free space at "${destination}": ${(error as Error).message}`];
  }
  const facts = `${formatBytes(free)} free at "${destination}", the database is ` +
    `${database ? formatBytes(size) : "not created yet"}`;
  if (free < size) {
    return [
      "FAIL",
      `${facts}: the backup cannot hold a snapshot of it, and a full disk stops the node: ` +
      `free space there or move the backup to a larger disk`,
    ];
  }
  if (free < 2 * size) {
    return [
      "WARN",
      `${facts}: less than twice the database, and the backup grows with every change ` +
      `until it is compacted: free space there`,
    ];
  }
  return ["OK", facts];
}
