/**
 * The version check: the backup's last version against the node's database, opened
 * read-only. Equal is in step; the backup one ahead is a change the node never committed,
 * which the plugin drops at its next start; anything else stops the node.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { restoreTargetOf } from "../node_database.ts";
import { existsSync, statIfExists } from "../../fs/exists.ts";
import { KEY_FILE } from "../../crypto/key_file.ts";
import { dataVersionAt } from "../../sqlite/data_version.ts";
import { whyUnreadable } from "../why_unreadable.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { cliCommand } from "../../fs/advised_command.ts";
import type { CheckResult, Found } from "./check.ts";
import { describeBackup } from "./describe_backup.ts";

function databaseVersion(path: string): number {
  const version = dataVersionAt(path);
  if (version === undefined) throw new Error("it has no data_version in its vars table");
  return version;
}

export function versionCheck(found: Found): CheckResult {
  const { database } = found;
  const name = basename(database);
  const target = restoreTargetOf(found.dir, database);
  const url = found.lock!.backend_url;
  let b = found.description!.lastVersion;
  if (!statIfExists(database)) {
    if (b === 0) {
      return [
        "OK",
        `no ${name} yet and the backup is empty: lightningd creates the database ` +
        `at its first start, through the plugin`,
      ];
    }
    return [
      "FAIL",
      `no ${name} in "${dirname(database)}" but the backup holds version ${b}: restore it ` +
      `with "${
        cliCommand("restore", `${shellQuote(url)} ${shellQuote(target)}`)
      }" before starting ` +
      `lightningd`,
    ];
  }
  let m: number;
  try {
    // A running node may commit meanwhile: read the database on both sides of the backup.
    for (let attempt = 0;; attempt++) {
      m = databaseVersion(database);
      if (attempt > 0) b = describeBackup(url).lastVersion;
      if (databaseVersion(database) === m || attempt === 4) break;
    }
  } catch (error) {
    // A hot journal, a damaged file: SQLite's words alone name neither, nor what to do.
    const why = whyUnreadable(error, database);
    return ["FAIL", why ?? `cannot read "${database}": ${(error as Error).message}`];
  }
  if (m === b) return ["OK", `backup and ${name} in step at version ${b}`];
  const snapshotOnTop = found.description!.snapshots.at(-1) === b;
  if (m === b - 1 && !snapshotOnTop) {
    return [
      "OK",
      `${name} at ${m}, the backup at ${b}: the node stopped after the backup ` +
      `stored change ${b} but before committing it; the plugin drops it (rewind) at the ` +
      `next start`,
    ];
  }
  if (m > b) {
    // A key file beside backup.lock: encrypted; a plain init is refused beside it.
    const encrypted = existsSync(`${found.dir}/${KEY_FILE}`);
    const aside = encrypted
      ? "the backup, backup.lock and backup.key"
      : "the backup and backup.lock";
    const args = `--lightning-dir ${shellQuote(found.dir)} <url>${encrypted ? " --encrypt" : ""}`;
    return [
      "FAIL",
      `${name} is at version ${m} but the backup only at ${b}: the node ran ` +
      `without the plugin, and the plugin will stop it: move ${aside} aside and run ` +
      `"${cliCommand("init", args)}" to start a new backup from the current database`,
    ];
  }
  return [
    "FAIL",
    `${name} is at version ${m} but the backup at ${b}: the database is older ` +
    `than the backup (an old copy put back?), and the plugin will stop the node: restore ` +
    `the database with "${
      cliCommand("restore", `${shellQuote(url)} <new file>`)
    }" and put it in place`,
  ];
}
