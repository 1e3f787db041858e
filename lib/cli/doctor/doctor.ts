/**
 * `doctor [--lightning-dir DIR]`: checks a node's backup set-up and prints one line per check,
 * `OK`, `WARN` or `FAIL` with what to do. A check that needs an earlier one that failed is
 * shown as `SKIP`. Exit status 1 when any check failed, else 0. It changes nothing.
 *
 * @module
 */
import { userPath } from "../../fs/user_path.ts";
import { LOCK_FILE } from "../../backup/lock_file.ts";
import { lockDestinations } from "../../backends/multi/mirrors.ts";
import { KEY_FILE } from "../../crypto/key_file.ts";
import { type CommandSpec, consoleOutput, Exit, type Output, runCommand } from "../args.ts";
import { COMPILED_PLUGIN_NAME } from "../launcher.ts";
import { checkNetworkDir } from "../node_dir.ts";
import { backendCheck } from "./backend_check.ts";
import type { Check, CheckResult, Found, Level } from "./check.ts";
import { configCheck } from "./config_check.ts";
import { copiesCheck } from "./copies_check.ts";
import { filesystemCheck } from "./filesystem_check.ts";
import { freeSpaceCheck } from "./free_space_check.ts";
import { hsmSecretCheck } from "./hsm_secret_check.ts";
import { keyFileCheck } from "./key_file_check.ts";
import { credentialsCheck } from "./credentials_check.ts";
import { launcherCheck } from "./launcher_check.ts";
import { lifecycleCheck } from "./lifecycle_check.ts";
import { lockCheck } from "./lock_check.ts";
import { DATABASE_NAME } from "../../backup/database_name.ts";
import { nodeUser } from "./node_user.ts";
import { nodeDatabase, UnsupportedWalletError } from "../node_database.ts";
import { permissionsCheck } from "./permissions_check.ts";
import { privacyCheck } from "./privacy_check.ts";
import { type DoctorSystem, realSystem } from "./system.ts";
import { versionCheck } from "./version_check.ts";

export type { Check, Level } from "./check.ts";
export { type DoctorSystem, realSystem } from "./system.ts";

const DOCTOR_HELP = `Usage: cln-backup doctor [--lightning-dir DIR]

Checks a node's backup set-up and prints one line per check: OK, WARN or FAIL, and what to
do. It only reads; run it as the user lightningd runs as, while lightningd runs or not.
  backup.lock   present in DIR, a backend_url, readable by lightningd's user
  backend       the backup opens and describes itself; lightningd's user can reach and write
                it
                (a socket: or s3:// backup: WARN, doctor leaves it to status)
  version       the backup's last version against DIR/lightningd.sqlite3's data_version
                (opened read-only): equal, or the backup one ahead (the plugin drops that
                uncommitted change at the next start)
  copies        with mirror_urls or async_urls: each file mirror opens (with backup.key's
                key, or none), lightningd's user can reach and write it, at the backup's
                version (the plugin stops the node
                otherwise); each file async copy too, not more than a change ahead of it (the
                copy drops that one), nor behind the backup's newest snapshot (it catches up
                from there); each copy tied to its backup id in backup.lock ("backup_ids"),
                and each file copy holding that backup (WARN for a copy without one); beside
                a remote backup, the ties only
  config        DIR/config or DIR/../config (or a file they include) loads the plugin as
                important-plugin=, and no disable-plugin= or later clear-plugins unloads it
  launcher      DIR/cln-backup-plugin exists, is executable, names an existing deno (WARN
                when that deno is in npx's cache, which npm may clean); lightningd's user
                may run it and that deno, and read the plugin
  permissions   the launcher's Deno permissions match backup.lock
  hsm_secret    exists with mode 0400 (the database backup is useless without it: back it up
                separately)
  backup.key    an encrypted backup's key file: mode 0600, readable by lightningd's user,
                holding that backup's key; none beside a plain backup or a wire v1 server
  credentials   an s3:// destination's keys in DIR/backup-s3.credentials, a server's
                DIR/backup.credential (WARN without one: wire v1, unauthenticated)
  privacy       a plain file backup, and each file copy, readable by its owner only (WARN
                when others may read one: it holds the node's database in the clear)
  free space    at the backup's destination and each file copy's (an s3:// backup's or
                copy's, or an encrypted server backup's: the lightning dir too, where the
                plugin's compaction rebuilds the database), against the database's size
  filesystem    one destination (the backup, a mirror or an async copy) remote or on another
                filesystem than the database (WARN when every one is on the database's: one
                disk failure loses them all)
  lifecycle     for an s3:// destination: no lifecycle rule of its bucket expires objects
                under its prefix (WARN naming the rule: it would delete the backup), or
                moves them to GLACIER or DEEP_ARCHIVE (WARN: a restore waits hours)

Options:
  --lightning-dir DIR  the network directory (for example ~/.lightning/bitcoin); default:
                       the current directory
  -h, --help           show this help

Exit status: 0 when no check failed (warnings allowed), 1 when one did.`;

export const DOCTOR_SPEC: CommandSpec = {
  name: "doctor",
  action: "Cannot check the node",
  help: DOCTOR_HELP,
  options: { "lightning-dir": { type: "string" } },
  positionals: [],
};

/** backup.lock names more than `backend_url` (or a malformed list, which the check says). */
function namesCopies(found: Found): boolean {
  try {
    const { sync, async } = lockDestinations(found.lock!);
    return sync.length + async.length > 1;
  } catch {
    return true;
  }
}

/** backup.lock names an s3:// destination (a malformed list: the copies check says). */
function namesS3(found: Found): boolean {
  try {
    const { sync, async } = lockDestinations(found.lock!);
    return [...sync, ...async].some((url) => url.startsWith("s3:"));
  } catch {
    return false;
  }
}

/** Runs every check on the network directory `dir`. */
export async function runChecks(
  dir: string,
  system: DoctorSystem = realSystem,
): Promise<Check[]> {
  try {
    checkNetworkDir(dir, "Cannot check");
  } catch (error) {
    // Every other check would only repeat this.
    return [{ level: "FAIL", name: "lightning dir", message: (error as Error).message }];
  }
  let database = `${dir}/${DATABASE_NAME}`;
  try {
    database = nodeDatabase(dir, "Cannot check");
  } catch (error) {
    // A wallet the plugin never sees (PostgreSQL): every other check would be beside it. A
    // config that cannot be read is the config check's to say.
    if (error instanceof UnsupportedWalletError) {
      return [{ level: "FAIL", name: "database", message: error.message }];
    }
  }
  const found: Found = { dir, database, user: nodeUser(dir, system.groupsOf, database) };
  const checks: Check[] = [];
  const run = async (
    name: string,
    needs: string | undefined,
    check: () => CheckResult | Promise<CheckResult>,
  ): Promise<boolean> => {
    if (needs !== undefined) {
      checks.push({ level: "SKIP", name, message: `needs ${needs}` });
      return false;
    }
    let level: Level;
    let message: string;
    try {
      [level, message] = await check();
    } catch (error) {
      [level, message] = ["FAIL", `cannot check: ${(error as Error).message}`];
    }
    checks.push({ level, name, message });
    return level !== "FAIL";
  };
  const lockOk = await run(LOCK_FILE, undefined, () => lockCheck(found));
  const backendOk = await run(
    "backend",
    lockOk ? undefined : "a readable backup.lock",
    () => backendCheck(found),
  );
  const versionNeed = !backendOk
    ? "a backup that opens"
    : found.description === undefined
    ? "a local backup (for a remote one, compare status's version with the database's)"
    : undefined;
  await run("version", versionNeed, () => versionCheck(found));
  if (lockOk && namesCopies(found)) {
    // Beside a remote backup too: each copy's tie is checked, if not its version.
    const copiesNeed = backendOk ? undefined : "a backup that opens";
    await run("copies", copiesNeed, () => copiesCheck(found));
  }
  await run("config", undefined, () => configCheck(found));
  await run("launcher", undefined, () => launcherCheck(found));
  const permissionsNeed = !lockOk
    ? "a readable backup.lock"
    : found.launcher === undefined
    ? found.program?.endsWith(`/${COMPILED_PLUGIN_NAME}`)
      ? "a launcher script (the compiled plugin's permissions are built in: run " +
        "compile:plugin again after changing backup.lock)"
      : "a launcher that runs"
    : undefined;
  await run("permissions", permissionsNeed, () => permissionsCheck(found, found.launcher!));
  await run("hsm_secret", undefined, () => hsmSecretCheck(found));
  const destinationNeed = lockOk ? undefined : "a readable backup.lock";
  await run(KEY_FILE, backendOk ? undefined : "a backup that opens", () => keyFileCheck(found));
  const keysOk = await run("credentials", destinationNeed, () => credentialsCheck(found));
  await run("privacy", backendOk ? undefined : "a backup that opens", () => privacyCheck(found));
  await run("free space", destinationNeed, () => freeSpaceCheck(found, system));
  await run("filesystem", destinationNeed, () => filesystemCheck(found, system));
  if (lockOk && namesS3(found)) {
    const keys = keysOk ? undefined : "the S3 keys (credentials)";
    await run("lifecycle", keys, () => lifecycleCheck(found, system));
  }
  return checks;
}

/** One line per check: `OK   name: what, and what to do`. */
function formatCheck(check: Check): string {
  return `${check.level.padEnd(4)} ${check.name}: ${check.message}`;
}

export async function doctor(
  args: string[],
  output: Output = consoleOutput,
  system: DoctorSystem = realSystem,
): Promise<number> {
  return await runCommand(DOCTOR_SPEC, args, output, async ({ values }) => {
    const dir = userPath(String(values["lightning-dir"] ?? "."));
    output.out(`cln-backup doctor: ${dir}`);
    const checks = await runChecks(dir, system);
    for (const check of checks) output.out(formatCheck(check));
    const failed = checks.filter((c) => c.level === "FAIL").length;
    const warned = checks.filter((c) => c.level === "WARN").length;
    output.out(
      failed > 0
        ? `${failed} check(s) failed, ${warned} warning(s): fix the FAIL lines, then run doctor again`
        : warned > 0
        ? `no check failed, ${warned} warning(s)`
        : "all checks passed",
    );
    return failed > 0 ? Exit.Failed : Exit.Ok;
  });
}
