/**
 * The warning init, mirror and upgrade print once they have set a node's destinations up,
 * when every one is a file on the database's filesystem (lib/backup/same_disk.ts, the rule
 * doctor's filesystem check judges by). A warning, not a refusal: a copy elsewhere may be
 * coming, a second disk may be mounted there on purpose, and tests and the demo keep their
 * backups local.
 *
 * @module
 */
import { lockDestinations } from "../backends/multi/mirrors.ts";
import type { LockFile } from "../backup/lock_file.ts";
import {
  type DeviceOf,
  diesWithDisk,
  type DiskSpread,
  diskSpread,
  sameDiskWarning,
} from "../backup/same_disk.ts";
import type { Output } from "./args.ts";
import { nodeDatabase } from "./node_database.ts";
import { existsSync } from "../fs/exists.ts";
import { KEY_FILE } from "../crypto/key_file.ts";

/**
 * Warns on stderr when `lock`'s destinations all die with the disk of the node's database (in
 * `dir`, or as `wallet=` in its config names it when `database` is not given).
 */
export function warnIfSameDisk(
  lock: LockFile,
  dir: string,
  database: string | undefined,
  output: Output,
  device: DeviceOf,
): void {
  const { sync, async } = lockDestinations(lock);
  let spread: DiskSpread;
  try {
    spread = diskSpread([...sync, ...async], database ?? nodeDatabase(dir, ""), device);
  } catch {
    // The set-up is done; a config or filesystem that cannot be told is doctor's to say.
    return;
  }
  if (!diesWithDisk(spread)) return;
  // A key file beside backup.lock: the set-up is encrypted (the plugin refuses it otherwise).
  const encrypted = existsSync(`${dir}/${KEY_FILE}`);
  output.err(`Warning: ${sameDiskWarning(spread, dir, encrypted)}`);
}
