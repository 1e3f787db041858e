/**
 * `doctor [--lightning-dir DIR]`: checks a node's backup set-up and prints one line per check,
 * `OK`, `WARN` or `FAIL` with what to do. A check that needs an earlier one that failed is
 * shown as `SKIP`. Exit status 1 when any check failed, else 0. It changes nothing.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { statfsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { BackupDescription } from "../backends/backend.ts";
import { openReader } from "../backends/open.ts";
import { type BackupUrl, parseBackupUrl } from "../backends/url.ts";
import { LOCK_FILE, type LockFile, readLockFile } from "../backup/lock_file.ts";
import { DATABASE_NAME } from "../backup/restore.ts";
import {
  COMPILED_PLUGIN_NAME,
  launchArgs,
  LAUNCHER_NAME,
  launchPlan,
  parseLauncher,
} from "./launcher.ts";
import { checkNetworkDir } from "./node_dir.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  type Output,
  runCommand,
  userPath,
} from "./args.ts";

export const DOCTOR_HELP = `Usage: cln-backup doctor [--lightning-dir DIR]

Checks a node's backup set-up and prints one line per check: OK, WARN or FAIL, and what to
do. It only reads; run it as the user lightningd runs as, while lightningd runs or not.
  backup.lock   present in DIR, a backend_url, readable by lightningd's user
  backend       the backup opens and describes itself; lightningd's user can write to it
  version       the backup's last version against DIR/lightningd.sqlite3's data_version
                (opened read-only): equal, or the backup one ahead (the plugin drops that
                uncommitted change at the next start)
  config        DIR/config or DIR/../config loads the plugin as important-plugin=
  launcher      DIR/cln-backup-plugin exists, is executable, names an existing deno (WARN
                when that deno is in npx's cache, which npm may clean)
  permissions   the launcher's Deno permissions match backup.lock
  hsm_secret    exists with mode 0400 (the database backup is useless without it: back it up
                separately)
  free space    at the backup's destination, against the database's size
  filesystem    the backup on another filesystem than the database (WARN when the same)

Options:
  --lightning-dir DIR  the network directory (for example ~/.lightning/bitcoin); default:
                       the current directory
  -h, --help           show this help

Exit status: 0 when no check failed (warnings allowed), 1 when one did.`;

export const DOCTOR_SPEC: CommandSpec = {
  name: "doctor",
  help: DOCTOR_HELP,
  options: { "lightning-dir": { type: "string" } },
  positionals: [],
};

export type Level = "OK" | "WARN" | "FAIL" | "SKIP";

export interface Check {
  level: Level;
  name: string;
  message: string;
}

/** What doctor asks the system beyond files; tests give fakes. */
export interface DoctorSystem {
  /** Bytes an unprivileged user may still write on the filesystem holding `path`. */
  freeBytes(path: string): number;
  /** The id of the filesystem (device) holding `path`. */
  device(path: string): number;
}

export const realSystem: DoctorSystem = {
  freeBytes(path) {
    const stats = statfsSync(path);
    return stats.bavail * stats.bsize;
  },
  device(path) {
    const dev = Deno.statSync(path).dev;
    if (dev === null) throw new Error(`cannot tell the filesystem of "${path}"`);
    return dev;
  },
};

function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** The nearest existing directory at or above `path`. */
function existingAncestor(path: string): string {
  let at = path;
  while (!statOrUndefined(at) && dirname(at) !== at) at = dirname(at);
  return at;
}

export function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Who lightningd runs as: the owner of its database, else of hsm_secret, else of DIR. */
interface NodeUser {
  uid: number;
  gid: number;
  /** What the uid was learned from, for messages. */
  from: string;
}

function nodeUser(dir: string): NodeUser | undefined {
  for (const path of [`${dir}/${DATABASE_NAME}`, `${dir}/hsm_secret`, dir]) {
    const info = statOrUndefined(path);
    if (info?.uid != null && info.gid != null) return { uid: info.uid, gid: info.gid, from: path };
  }
  return undefined;
}

/** Whether the permission bits let `user` do `what` (4 read, 2 write, 1 execute/search). */
function allows(info: Deno.FileInfo, user: NodeUser | undefined, what: number): boolean {
  if (user === undefined || info.mode === null || user.uid === 0) return true;
  const mode = info.mode;
  if (info.uid === user.uid) return ((mode >> 6) & what) === what;
  if (info.gid === user.gid) return ((mode >> 3) & what) === what;
  return (mode & what) === what;
}

interface Found {
  dir: string;
  user: NodeUser | undefined;
  lock?: LockFile;
  url?: BackupUrl;
  description?: BackupDescription;
  /** The program the config loads, or the launcher when none. */
  program?: string;
}

type CheckResult = [Level, string];

function lockCheck(found: Found): CheckResult {
  const path = `${found.dir}/${LOCK_FILE}`;
  const info = statOrUndefined(path);
  if (!info) {
    return [
      "FAIL",
      `no ${LOCK_FILE} in "${found.dir}": create the backup with "deno task init -- ` +
      `file:///path/to/backup --lightning-dir ${found.dir}" (DIR must be the network ` +
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
      `"${path}" is not readable by uid ${found.user?.uid} (lightningd's user, the owner ` +
      `of "${found.user?.from}"): chown it to that user, or chmod 644 it`,
    ];
  }
  return ["OK", `names ${found.lock.backend_url}`];
}

function backendCheck(found: Found): CheckResult {
  const url = found.lock!.backend_url;
  try {
    const reader = openReader(url);
    try {
      found.description = reader.describe();
    } finally {
      reader.close();
    }
  } catch (error) {
    return ["FAIL", `${(error as Error).message}`];
  }
  const d = found.description;
  if (d.format.startsWith("v1")) {
    return [
      "FAIL",
      `${url} is a v1 backup of the Python plugin, which this plugin does not append to: ` +
      `convert it with "deno task upgrade -- --lightning-dir ${found.dir}"`,
    ];
  }
  if (found.url?.scheme === "file") {
    const path = found.url.path;
    const unwritable = [path, ...[...Deno.readDirSync(path)].map((e) => `${path}/${e.name}`)]
      .find((p) => {
        const info = Deno.statSync(p);
        return !allows(info, found.user, info.isDirectory ? 3 : 2);
      });
    if (unwritable) {
      return [
        "FAIL",
        `"${unwritable}" is not writable by uid ${found.user?.uid} (lightningd's user, the ` +
        `owner of "${found.user?.from}"): run "chown -R ${found.user?.uid}:` +
        `${found.user?.gid} ${path}" (was init run as another user?)`,
      ];
    }
  }
  const versions = d.records === 0 ? "empty (version 0)" : `versions ${d.firstVersion} to ` +
    `${d.lastVersion}, ${d.records} records`;
  return ["OK", `${url} opens: ${d.format}, ${versions}, ${formatBytes(d.bytes)}`];
}

function databaseVersion(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const row = db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get();
    if (row === undefined) throw new Error("it has no data_version in its vars table");
    return Number(row.intval);
  } finally {
    db.close();
  }
}

function describeBackup(url: string): BackupDescription {
  const reader = openReader(url);
  try {
    return reader.describe();
  } finally {
    reader.close();
  }
}

function versionCheck(found: Found): CheckResult {
  const database = `${found.dir}/${DATABASE_NAME}`;
  const url = found.lock!.backend_url;
  let b = found.description!.lastVersion;
  if (!statOrUndefined(database)) {
    if (b === 0) {
      return [
        "OK",
        `no ${DATABASE_NAME} yet and the backup is empty: lightningd creates the database ` +
        `at its first start, through the plugin`,
      ];
    }
    return [
      "FAIL",
      `no ${DATABASE_NAME} in "${found.dir}" but the backup holds version ${b}: restore it ` +
      `with "deno task restore -- ${url} ${found.dir}" before starting lightningd`,
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
    return ["FAIL", `cannot read "${database}": ${(error as Error).message}`];
  }
  if (m === b) return ["OK", `backup and ${DATABASE_NAME} in step at version ${b}`];
  const snapshotOnTop = found.description!.snapshots.at(-1) === b;
  if (m === b - 1 && !snapshotOnTop) {
    return [
      "OK",
      `${DATABASE_NAME} at ${m}, the backup at ${b}: the node stopped after the backup ` +
      `stored change ${b} but before committing it; the plugin drops it (rewind) at the ` +
      `next start`,
    ];
  }
  if (m > b) {
    return [
      "FAIL",
      `${DATABASE_NAME} is at version ${m} but the backup only at ${b}: the node ran ` +
      `without the plugin, and the plugin will stop it: move the backup and backup.lock ` +
      `aside and run "deno task init" to start a new backup from the current database`,
    ];
  }
  return [
    "FAIL",
    `${DATABASE_NAME} is at version ${m} but the backup at ${b}: the database is older ` +
    `than the backup (an old copy put back?), and the plugin will stop the node: restore ` +
    `the database with "deno task restore -- ${url} <new file>" and put it in place`,
  ];
}

interface ConfigLine {
  file: string;
  key: "plugin" | "important-plugin";
  value: string;
  path: string;
}

function configLines(dir: string): { files: string[]; lines: ConfigLine[] } {
  const files: string[] = [];
  const lines: ConfigLine[] = [];
  for (const file of [`${dir}/config`, `${dirname(dir)}/config`]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    files.push(file);
    for (const raw of text.split("\n")) {
      const match = /^\s*(important-plugin|plugin)\s*=\s*(.*?)\s*$/.exec(raw);
      if (!match) continue;
      const value = match[2];
      const home = Deno.env.get("HOME");
      const expanded = value.startsWith("~/") && home ? `${home}${value.slice(1)}` : value;
      const path = isAbsolute(expanded) ? expanded : resolve(dirname(file), expanded);
      lines.push({ file, key: match[1] as ConfigLine["key"], value, path });
    }
  }
  return { files, lines };
}

function samePath(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return Deno.realPathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}

function configCheck(found: Found): CheckResult {
  const launcher = `${found.dir}/${LAUNCHER_NAME}`;
  const ours = [launcher, `${found.dir}/${COMPILED_PLUGIN_NAME}`];
  let config: ReturnType<typeof configLines>;
  try {
    config = configLines(found.dir);
  } catch (error) {
    return ["FAIL", `cannot read the lightningd config: ${(error as Error).message}`];
  }
  const loading = config.lines.filter((l) => ours.some((p) => samePath(l.path, p)));
  const important = loading.find((l) => l.key === "important-plugin");
  found.program = important?.path ?? loading[0]?.path ?? launcher;
  const python = config.lines.find((l) => /(^|\/)backup\.py$/.test(l.value));
  if (python) {
    return [
      "FAIL",
      `${python.file} still loads the Python backup plugin (${python.key}=${python.value}): ` +
      `remove that line; it would also hook db_write and read backup.lock`,
    ];
  }
  if (important) return ["OK", `${important.file} has important-plugin=${important.value}`];
  if (loading.length > 0) {
    const line = loading[0];
    return [
      "FAIL",
      `${line.file} loads the plugin with plugin=, so lightningd would run on without a ` +
      `backup if the plugin died: change the line to important-plugin=${line.value}`,
    ];
  }
  const where = config.files.length === 0
    ? `no config file in "${found.dir}" or "${dirname(found.dir)}"`
    : config.files.length === 1
    ? `${config.files[0]} does not load the plugin`
    : `neither ${config.files.join(" nor ")} loads the plugin`;
  return [
    "FAIL",
    `${where}: add the line important-plugin=${launcher} to ${found.dir}/config and restart ` +
    `lightningd (options given on lightningd's command line are not checked)`,
  ];
}

function isExecutableFile(info: Deno.FileInfo | undefined): boolean {
  return info !== undefined && info.isFile && info.mode !== null && (info.mode & 0o111) !== 0;
}

function launcherCheck(
  found: Found,
  launch: { value?: ReturnType<typeof parseLauncher> },
): CheckResult {
  const program = found.program ?? `${found.dir}/${LAUNCHER_NAME}`;
  const info = statOrUndefined(program);
  if (!info) {
    return [
      "FAIL",
      `"${program}" is missing, so lightningd cannot start the plugin: init writes it; ` +
      `to write it again, move backup.lock aside and run init with a new backup path`,
    ];
  }
  if (!isExecutableFile(info)) {
    return ["FAIL", `"${program}" is not executable: run "chmod 755 ${program}"`];
  }
  if (program.endsWith(`/${COMPILED_PLUGIN_NAME}`)) {
    return ["OK", `"${program}" is the compiled plugin (deno task compile:plugin)`];
  }
  const parsed = parseLauncher(Deno.readTextFileSync(program));
  if (!parsed) {
    return [
      "FAIL",
      `"${program}" is not a launcher written by init (no exec line naming deno): write ` +
      `it again (see the launcher line)`,
    ];
  }
  launch.value = parsed;
  if (!isExecutableFile(statOrUndefined(parsed.deno))) {
    return [
      "FAIL",
      `"${program}" runs "${parsed.deno}", which is not an executable file (deno moved or ` +
      `was removed?): install Deno there again, or edit the path in the launcher`,
    ];
  }
  const plugin = parsed.args.at(-1) ?? "";
  if (!statOrUndefined(plugin)) {
    return [
      "FAIL",
      `"${program}" runs "${plugin}", which is missing (the project moved?): edit the path ` +
      `in the launcher`,
    ];
  }
  if (parsed.deno.includes("/_npx/")) {
    return [
      "WARN",
      `"${program}" runs Deno from npx's cache ("${parsed.deno}"), which npm may clean at ` +
      `any time, and then lightningd cannot start the plugin: run "npm install ` +
      `deno@2.9.6" in the project and put node_modules/deno/deno's absolute path in the launcher`,
    ];
  }
  return ["OK", `"${program}" runs ${parsed.deno} ${plugin}`];
}

function permissionsCheck(found: Found, launch: ReturnType<typeof parseLauncher>): CheckResult {
  const plugin = launch!.args.at(-1)!;
  let expected: string[];
  try {
    expected = launchArgs(launchPlan({
      lightningDir: found.dir,
      backendUrl: found.lock!.backend_url,
      deno: launch!.deno,
      plugin,
    }));
  } catch (error) {
    return ["FAIL", (error as Error).message];
  }
  const flags = (args: string[]) => args.filter((a) => a.startsWith("--"));
  const have = flags(launch!.args);
  const missing = flags(expected).filter((f) => !have.includes(f));
  const extra = have.filter((f) => !expected.includes(f));
  if (missing.length > 0) {
    return [
      "FAIL",
      `the launcher lacks ${missing.join(" ")} for the backup backup.lock names, so the ` +
      `plugin would be denied it (backup.lock changed after init?): set the flags in the ` +
      `launcher to: ${flags(expected).join(" ")}`,
    ];
  }
  if (extra.length > 0) {
    return [
      "WARN",
      `the launcher also passes ${extra.join(" ")}: the plugin needs only ` +
      `${flags(expected).join(" ")}`,
    ];
  }
  const net = found.url?.scheme === "socket" ? ", connect to its server" : "";
  return [
    "OK",
    `the plugin may read backup.lock and the backup, write the backup${net}, nothing else`,
  ];
}

function hsmSecretCheck(found: Found): CheckResult {
  const path = `${found.dir}/hsm_secret`;
  const why = "the database backup is useless without it: back it up separately (once, " +
    "offline; it never changes)";
  const info = statOrUndefined(path);
  if (!info) {
    return [
      "WARN",
      `no hsm_secret in "${found.dir}" (a node that has not started yet, or the wrong ` +
      `directory?): once lightningd creates it, ${why}`,
    ];
  }
  const mode = (info.mode ?? 0) & 0o777;
  if (mode !== 0o400) {
    return [
      "WARN",
      `"${path}" has mode ${mode.toString(8).padStart(4, "0")}, not 0400: run "chmod 400 ` +
      `${path}"; and ${why}`,
    ];
  }
  return ["OK", `present, mode 0400; ${why}`];
}

function backupDestination(found: Found): string | undefined {
  return found.url?.scheme === "file" ? existingAncestor(found.url.path) : undefined;
}

function freeSpaceCheck(found: Found, system: DoctorSystem): CheckResult {
  const destination = backupDestination(found);
  if (!destination) return ["OK", "a remote backup: check free space on the backup server"];
  const database = statOrUndefined(`${found.dir}/${DATABASE_NAME}`);
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

function filesystemCheck(found: Found, system: DoctorSystem): CheckResult {
  const destination = backupDestination(found);
  if (!destination) return ["OK", "a remote backup, on another machine"];
  const database = `${found.dir}/${DATABASE_NAME}`;
  const near = statOrUndefined(database) ? database : found.dir;
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

/** Runs every check on the network directory `dir`. */
export function runChecks(dir: string, system: DoctorSystem = realSystem): Check[] {
  try {
    checkNetworkDir(dir, "Cannot check");
  } catch (error) {
    // Every other check would only repeat this.
    return [{ level: "FAIL", name: "lightning dir", message: (error as Error).message }];
  }
  const found: Found = { dir, user: nodeUser(dir) };
  const checks: Check[] = [];
  const run = (name: string, needs: string | undefined, check: () => CheckResult): boolean => {
    if (needs !== undefined) {
      checks.push({ level: "SKIP", name, message: `needs ${needs}` });
      return false;
    }
    let level: Level;
    let message: string;
    try {
      [level, message] = check();
    } catch (error) {
      [level, message] = ["FAIL", `cannot check: ${(error as Error).message}`];
    }
    checks.push({ level, name, message });
    return level !== "FAIL";
  };
  const lockOk = run(LOCK_FILE, undefined, () => lockCheck(found));
  const backendOk = run(
    "backend",
    lockOk ? undefined : "a readable backup.lock",
    () => backendCheck(found),
  );
  run("version", backendOk ? undefined : "a backup that opens", () => versionCheck(found));
  run("config", undefined, () => configCheck(found));
  const launch: { value?: ReturnType<typeof parseLauncher> } = {};
  run("launcher", undefined, () => launcherCheck(found, launch));
  const permissionsNeed = !lockOk
    ? "a readable backup.lock"
    : launch.value === undefined
    ? found.program?.endsWith(`/${COMPILED_PLUGIN_NAME}`)
      ? "a launcher script (the compiled plugin's permissions are built in: run " +
        "compile:plugin again after changing backup.lock)"
      : "a launcher that runs"
    : undefined;
  run("permissions", permissionsNeed, () => permissionsCheck(found, launch.value));
  run("hsm_secret", undefined, () => hsmSecretCheck(found));
  const destinationNeed = lockOk ? undefined : "a readable backup.lock";
  run("free space", destinationNeed, () => freeSpaceCheck(found, system));
  run("filesystem", destinationNeed, () => filesystemCheck(found, system));
  return checks;
}

/** One line per check: `OK   name: what, and what to do`. */
export function formatCheck(check: Check): string {
  return `${check.level.padEnd(4)} ${check.name}: ${check.message}`;
}

export async function doctor(
  args: string[],
  output: Output = consoleOutput,
  system: DoctorSystem = realSystem,
): Promise<number> {
  return await runCommand(DOCTOR_SPEC, args, output, ({ values }) => {
    const dir = userPath(String(values["lightning-dir"] ?? "."));
    output.out(`cln-backup doctor: ${dir}`);
    const checks = runChecks(dir, system);
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
