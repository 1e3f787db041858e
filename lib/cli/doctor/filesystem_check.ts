/**
 * The filesystem check: a backup whose every destination is on the database's own filesystem
 * dies with its disk; one destination elsewhere (remote, or another filesystem) saves it. The
 * rule is lib/backup/same_disk.ts's, which init, mirror and upgrade warn by too.
 *
 * @module
 */
import { lockDestinations } from "../../backends/multi/mirrors.ts";
import {
  diesWithDisk,
  type DiskSpread,
  diskSpread,
  sameDiskWarning,
} from "../../backup/same_disk.ts";
import type { CheckResult, Found } from "./check.ts";
import { existsSync } from "../../fs/exists.ts";
import { KEY_FILE } from "../../crypto/key_file.ts";
import type { DoctorSystem } from "./system.ts";

export function filesystemCheck(found: Found, system: DoctorSystem): CheckResult {
  const lock = found.lock!;
  let urls = [lock.backend_url];
  let async: string[] = [];
  try {
    const destinations = lockDestinations(lock);
    urls = [...destinations.sync, ...destinations.async];
    async = destinations.async;
  } catch {
    // The copies check says why; the backup alone is judged.
  }
  let spread: DiskSpread;
  try {
    spread = diskSpread(urls, found.database, system.device);
  } catch (error) {
    return ["WARN", `cannot compare filesystems: ${(error as Error).message}`];
  }
  if (diesWithDisk(spread)) {
    return ["WARN", sameDiskWarning(spread, found.dir, existsSync(`${found.dir}/${KEY_FILE}`))];
  }
  if (spread.sameDisk.length === 0) {
    return found.url?.scheme === "file"
      ? ["OK", `the backup is on another filesystem than the database`]
      : ["OK", "a remote backup, on another machine"];
  }
  const [survivor] = spread.elsewhere;
  const behind = async.includes(survivor)
    ? ` (an async copy, perhaps behind: see "The risk" in README.md)`
    : "";
  return [
    "OK",
    `${spread.sameDisk.map((path) => `"${path}"`).join(", ")} ${
      spread.sameDisk.length === 1 ? "is" : "are"
    } on the database's filesystem, but ${survivor} is not: one disk failure leaves it${behind}`,
  ];
}
