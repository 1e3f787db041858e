/**
 * The `backup.lock` check: present, parses, and readable by lightningd's user.
 *
 * @module
 */
import { parseBackupUrl } from "../../backends/url.ts";
import { LOCK_FILE, readLockFile } from "../../backup/lock_file.ts";
import { statIfExists } from "../../fs/exists.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { cliCommand } from "../../fs/advised_command.ts";
import type { CheckResult, Found } from "./check.ts";
import { allows, describeUser } from "./node_user.ts";

export function lockCheck(found: Found): CheckResult {
  const path = `${found.dir}/${LOCK_FILE}`;
  const info = statIfExists(path);
  if (!info) {
    return [
      "FAIL",
      `no ${LOCK_FILE} in "${found.dir}": create the backup with "${
        cliCommand("init", `file:///path/to/backup --lightning-dir ${shellQuote(found.dir)}`)
      }" (DIR must be the network ` +
      `directory lightningd runs plugins in, for example ~/.lightning/bitcoin)`,
    ];
  }
  try {
    found.lock = readLockFile(found.dir);
    found.url = parseBackupUrl(found.lock.backend_url);
  } catch (error) {
    return ["FAIL", (error as Error).message];
  }
  if (!allows(info, found.user, 4)) {
    return [
      "FAIL",
      `"${path}" is not readable by ${describeUser(found.user)}: chown it to that user, or ` +
      `chmod 644 it`,
    ];
  }
  return ["OK", `names ${found.lock.backend_url}`];
}
