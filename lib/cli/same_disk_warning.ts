/**
 * The warning init, mirror and upgrade print once they have set a node's destinations up,
 * when every one is a file on the database's filesystem (lib/backup/same_disk.ts, the rule
 * doctor's filesystem check judges by). A warning, not a refusal: a copy elsewhere may be
 * coming, a second disk may be mounted there on purpose, and tests and the demo keep their
 * backups local. A check that cannot be made is a Note saying why: said nothing, the operator
 * would take the set for one that outlives the disk.
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
import { parseBackupUrl } from "../backends/url.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { shellQuote } from "../fs/shell_quote.ts";

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
  const urls = [...sync, ...async];
  // A remote destination outlives the disk: nothing to stat, nothing that could fail.
  if (urls.some((url) => parseBackupUrl(url).scheme !== "file")) return;
  let spread: DiskSpread;
  try {
    const at = database ?? nodeDatabase(dir, "cannot tell where the node's database is");
    spread = diskSpread(urls, at, device);
  } catch (error) {
    // The set-up is done: not a refusal. Deno's advice to rerun with a flag is no operator's.
    const why = (error as Error).message.replace(/, run again with the --allow-\w+ flag$/, "");
    output.err(
      `Note: cannot check that a destination outlives the disk of the node's database ` +
        `(${why}): doctor checks it: "${
          cliCommand("doctor", `--lightning-dir ${shellQuote(dir)}`)
        }"`,
    );
    return;
  }
  if (!diesWithDisk(spread)) return;
  // A key file beside backup.lock: the set-up is encrypted (the plugin refuses it otherwise).
  const encrypted = existsSync(`${dir}/${KEY_FILE}`);
  output.err(`Warning: ${sameDiskWarning(spread, dir, encrypted)}`);
}
