/**
 * `restore <url> <file-or-dir> [--to-version N]`: rebuilds the node's database from a backup.
 *
 * @module
 */
import { userPath } from "../fs/user_path.ts";
import { parseBackupUrl, sameBackup } from "../backends/url.ts";
import type { BackupReader } from "../backends/backend.ts";
import { backupKind, connectReader, openReader } from "../backends/open.ts";
import { readBesideCompaction } from "../backends/file/read_beside_compaction.ts";
import { convertedPath } from "../backends/v1/converted.ts";
import { pathToFileURL } from "node:url";
import { DATABASE_NAME } from "../backup/database_name.ts";
import {
  describeTail,
  refuseOccupiedTarget,
  restoreBackup,
  type RestoreResult,
  restoreTarget,
} from "../backup/restore.ts";
import { existsSync, statIfExists } from "../fs/exists.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { isOutOfRoom } from "../fs/os_error.ts";
import { LOCK_FILE, readLockFile } from "../backup/lock_file.ts";
import { KEY_FILE } from "../crypto/key_file.ts";
import { lockDestinations } from "../backends/multi/mirrors.ts";
import { removeLeftovers, workPath } from "../fs/work_path.ts";
import {
  type CopyFacts,
  copyFacts,
  type CopyNode,
  refuseDiverged,
  refuseOtherNodes,
} from "../backup/node_id.ts";
import { Interrupted } from "../fs/interrupt.ts";
import { basename, dirname } from "node:path";
import { BASE_DIR_NAME, checkNetworkDir, holdsNode, networkDirs, NETWORKS } from "./node_dir.ts";
import { nodeDatabase, UnsupportedWalletError } from "./node_database.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  type Output,
  runCommand,
  UsageError,
  versionArg,
} from "./args.ts";
import { type Prompt, SECRET_HELP, SECRET_OPTIONS, terminalPrompt } from "./secrets.ts";
import { plainForEncryptedNode, s3Unlock, unlockReader } from "./unlock.ts";

const RESTORE_HELP = `Usage: cln-backup restore <url> <file-or-dir> [--to-version N] [--also URL]...

Rebuilds a node's database from the backup at <url> (a cln-backup directory, or a v1 .dbak
file of the Python plugin). <file-or-dir> is the database file to create, or a directory to
create lightningd.sqlite3 in. The database is built in a temporary file beside the target
(statements of lightningd before PR 4090 are repaired), must pass SQLite's integrity check
and hold the backup's version in vars.data_version, and is then synced and renamed into
place. It never overwrites an existing database. Memory use does not grow with the backup.

Put the restored file in the node's network directory as lightningd.sqlite3 only while
lightningd is stopped, and with the node's own hsm_secret: the database is useless without it.

Options:
  --to-version N  restore the state as of change N (point in time) instead of the latest;
                  N must be at or after the backup's oldest snapshot. For inspection: an N
                  older than the backup's last version into a node's directory (its
                  hsm_secret or backup.lock, or a network dir's name), as
                  lightningd.sqlite3 or the file its config's wallet= names, is refused
                  unless --accept-older, as is any N of a backup whose end does not read.
                  A wallet= file outside the node's directory is not recognised: restore
                  an older N elsewhere to inspect it
  --passphrase-file FILE, --identity FILE
                  an encrypted backup's secret (below)
  --also URL      another copy of the backup (a destination of mirror_urls or async_urls);
                  repeatable. restore reads every copy, restores the newest one that
                  restores, and says which; it refuses when a readable copy is newer than the
                  one restored (with --to-version N: the first, newest first, that holds N),
                  copies whose databases hold different node ids (vars.node_id) or none,
                  copies at the same version whose last changes differ (--accept-older takes
                  the first given), and a restore into a lightning dir whose backup.lock
                  names copies not given
  --accept-older  restore an older copy, or an older version into a node's directory, all
                  the same (a node on an old database can lose its funds: broadcast revoked
                  state)
  -h, --help      show this help

On a terminal, a restore that runs over two seconds shows its progress on stderr. It prints
the restored path, the version and the number of changes applied. When the backup ends in
bytes that fail their checks (a change torn by a crash, or a damaged last change: read alone,
the two look the same), it restores the version before them and prints a note saying where
it stopped and why: if the node's database is one version further, the backup is damaged.
When the backup ends with a change, a note says that lightningd may not have committed it,
and why one change ahead is safe. Work files of a killed restore (*.restoring-PID) in the
target's directory are removed first, one line each.

${SECRET_HELP}
A wrong passphrase or identity, a missing key.json, a record that fails authentication or,
with a passphrase or identity given, a backup that is not encrypted each stop the restore
with one line, and nothing is left at the target.`;

export const RESTORE_SPEC: CommandSpec = {
  name: "restore",
  action: "Cannot restore backup",
  help: RESTORE_HELP,
  options: {
    "to-version": { type: "string" },
    "also": { type: "string", multiple: true },
    "accept-older": { type: "boolean" },
    ...SECRET_OPTIONS,
  },
  positionals: ["url", "file-or-dir"],
  interrupted: "nothing was written",
};

const BAR_WIDTH = 30;

/** The progress line of a long restore, shown once it has run for `delayMs`. */
export class RestoreProgress {
  #start = performance.now();
  #range: { first: number; last: number } | undefined;
  #shown = false;

  constructor(
    readonly reader: BackupReader,
    readonly toVersion: number | undefined,
    readonly show: (text: string) => void,
    readonly delayMs = 2000,
  ) {}

  update(version: number): void {
    if (performance.now() - this.#start < this.delayMs) return;
    // Only a long restore pays for describing the backup, to know where it ends.
    this.#range ??= this.#describeRange();
    const { first, last } = this.#range;
    const fraction = last > first
      ? Math.min(1, Math.max(0, (version - first) / (last - first)))
      : 1;
    const filled = Math.round(fraction * BAR_WIDTH);
    this.show(
      `restoring [${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ` +
        `${Math.floor(fraction * 100)}% version ${version} of ${last}`,
    );
    this.#shown = true;
  }

  #describeRange(): { first: number; last: number } {
    const description = this.reader.describe();
    const last = this.toVersion ?? description.lastVersion;
    const first = description.snapshots.findLast((s) => s <= last) ?? description.firstVersion;
    return { first, last };
  }

  /** Clears the progress line, if one was shown. */
  done(): void {
    if (this.#shown) this.show("");
  }
}

function describeRestore(result: RestoreResult): string {
  const from = result.snapshotVersion === undefined
    ? "from the first change"
    : `on top of the snapshot at version ${result.snapshotVersion}`;
  return `Restored "${result.path}" at version ${result.version}: ${result.changes} ` +
    `change(s) applied ${from}; it passes SQLite's integrity check`;
}

/**
 * The note after a restore that ends with a change: the plugin stores each change before
 * lightningd commits it, so the last one may be a change the node never committed (it stopped
 * in between, or the plugin refused the change after an I/O error and kept it). Why one ahead is
 * safe: it is the database a crash just after that commit would have left, which lightningd
 * recovers from as from any crash; and the node's own database, one behind, makes the plugin
 * drop that change at its next start (the version check).
 */
export function oneAheadNote(version: number): string {
  return `Note: the backup's last change, ${version}, was stored before lightningd committed ` +
    `it, and lightningd may not have (it stopped in between, or the plugin refused the change ` +
    `after an I/O error); then this database is one change ahead of the node's. That is safe: ` +
    `it is what a crash just after that commit would have left. A node restarted on its own ` +
    `database at ${version - 1} instead has the plugin drop change ${version} from the backup.`;
}

/**
 * The note after a restore from one URL into a directory without backup.lock (a new machine's):
 * restore cannot know of the backup's other copies there, and this one may lag behind them
 * (an async copy, a mirror dropped under degrade), which the notes above cannot tell.
 */
export function aloneNote(url: string): string {
  return `Note: restored from ${url} alone, and no ${LOCK_FILE} here names the node's other ` +
    `copies: if it had any (mirror_urls, async_urls), restore naming each with --also, so ` +
    `that restore takes the newest: a database older than the node's last state can make it ` +
    `broadcast revoked state and lose its funds.`;
}

/**
 * The note after a restore of the newest state whose database has processed blocks: a check
 * a new machine has of a backup hours behind the node (a copy that stopped being written, or
 * taken back in time), since the block's time is on the chain, not in the backup. Not one a
 * few changes behind: channels change far more often than blocks come.
 */
export function lastBlockNote(height: number): string {
  return `Note: the restored database had processed blocks up to ${height}; lightningd stores ` +
    `each block it processes, so a backup written until the node stopped ends near the block ` +
    `the node had reached (up to about 15 blocks before it if the node stopped just after a ` +
    `start, which processes the last blocks again; more if its bitcoind was behind). If block ` +
    `${height} was mined hours before the node stopped (a block explorer dates it), this ` +
    `backup may be older than the node's last state, and a node started on it can broadcast ` +
    `revoked state and lose its funds: look for a newer copy first.`;
}

/**
 * The notes after a restore: where a torn or damaged end stopped it, one change ahead, and
 * the last block the database had processed; the last two for the `newest` state only.
 */
function restoreNotes(result: RestoreResult, newest: boolean): string[] {
  return [
    ...(result.tail ? [describeTail(result.tail, result.version)] : []),
    ...(newest && result.version !== result.snapshotVersion ? [oneAheadNote(result.version)] : []),
    ...(newest && result.lastBlock !== undefined ? [lastBlockNote(result.lastBlock)] : []),
  ];
}

/**
 * A restore that filled its file system, said with the place: Deno's write error names no
 * path, and SQLite's ("database or disk is full") neither. `undefined` for another error.
 */
function diskFull(error: unknown, dir: string): Error | undefined {
  if (!isOutOfRoom(error)) return undefined;
  return new Error(
    `Cannot restore backup: the file system of "${dir}" is full (no space or quota left); ` +
      `nothing was written there: free some space on it, or restore to another file system`,
  );
}

/** A symlink to nothing at `path` would read as "database already exists": say what it is. */
function refuseDanglingLink(path: string): void {
  let link: string;
  try {
    link = Deno.readLinkSync(path);
  } catch {
    return; // Not a symlink, or nothing there.
  }
  try {
    Deno.statSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      `Cannot restore backup: "${path}" is a symbolic link to "${link}", which does not ` +
        `exist: remove the link, or restore to "${link}" itself`,
    );
  }
}

/**
 * A directory where the database goes (the target directory's lightningd.sqlite3, or the
 * target itself so named; a Docker bind mount of a missing file makes one): restoring into
 * it would put the database one level deeper, where lightningd never opens it.
 */
function refuseDirectoryAt(path: string, target: string): void {
  const given = dirname(path);
  const at = statIfExists(path)?.isDirectory
    ? path
    : path !== target && basename(given) === DATABASE_NAME
    ? given
    : undefined;
  if (at === undefined) return;
  throw new Error(
    `Cannot restore backup: "${at}" is a directory, where the database goes: move it ` +
      `aside, or choose another target`,
  );
}

/**
 * A node's directory whose config keeps the database elsewhere (a `wallet=` line): restored
 * into the directory, the database would lie where lightningd never opens it, and the node
 * would start on whatever its wallet file holds. With `toVersion`, a file that lies outside
 * any node's directory is said not to be checked ({@linkcode intoNodeDatabase} cannot tell
 * it from a copy): the operator sent there would else take its silence for a check.
 */
function refuseDatabaseElsewhere(path: string, target: string, toVersion?: number): void {
  const dir = dirname(path);
  if (!statIfExists(target)?.isDirectory) return;
  const node = existsSync(`${dir}/hsm_secret`) ||
    (NETWORKS as readonly string[]).includes(basename(dir));
  if (!node) return;
  let database: string;
  try {
    database = nodeDatabase(dir, "Cannot restore backup");
  } catch (error) {
    // A restore after a loss must not wait on the config: a file named as the target is
    // restored whatever the config says.
    if (error instanceof UnsupportedWalletError) {
      throw new Error(
        `Cannot restore backup: lightningd's config keeps this node's database outside SQLite ` +
          `(its wallet= line), so lightningd would not open one restored into "${dir}": name ` +
          `a database file as the target`,
      );
    }
    throw new Error(`${(error as Error).message}; or name the database file itself as the target`);
  }
  // The config may name the directory through a link (`~/.lightning` on another disk).
  if (realLocation(database) === realLocation(path)) return;
  const unchecked = toVersion !== undefined && !intoNodeDatabase(database)
    ? `, but with --to-version only a state the node is to run on: outside the node's ` +
      `directory, restore does not tell that file from a copy, and does not refuse a version ` +
      `older than the backup's last there (restore it elsewhere to inspect it)`
    : "";
  throw new Error(
    `Cannot restore backup: lightningd's config keeps this node's database at ` +
      `"${database}" (its wallet= line), not in "${dir}": restore to "${database}" ` +
      `itself${unchecked}`,
  );
}

/** `path` with its directory's links followed: the file itself may not be there yet. */
function realLocation(path: string): string {
  try {
    return `${Deno.realPathSync(dirname(path))}/${basename(path)}`;
  } catch {
    return path; // No such directory: nothing to follow.
  }
}

/**
 * A target that names a lightning network directory not made yet (`~/.lightning/bitcoin` on
 * a new machine, as the README's restore line has it) would become a database file of that
 * name, where lightningd and the operator expect a directory; the base lightning dir
 * (`~/.lightning`), or its `lightningd.sqlite3` named as the file, would get a database
 * lightningd never opens. Each is refused, naming what to do.
 */
function refuseLightningDirMistakes(target: string, slashed = target.endsWith("/")): void {
  const bare = target.replace(/\/+$/, "");
  if (!existsSync(bare) && (NETWORKS as readonly string[]).includes(basename(bare))) {
    throw new Error(
      `Cannot restore backup: "${bare}" does not exist, and it is named as a lightning ` +
        `network directory: create it first (mkdir -p ${shellQuote(bare)}) and restore again, ` +
        `so that the database is "${bare}/${DATABASE_NAME}"; or name the database file itself`,
    );
  }
  if (bare !== "" && slashed && !existsSync(bare)) {
    // A trailing slash names a directory: it would otherwise become a database file.
    throw new Error(
      `Cannot restore backup: the directory "${bare}" does not exist: create it first ` +
        `(mkdir -p ${shellQuote(bare)}) and restore again, or name the database file itself`,
    );
  }
  let isDirectory = false;
  try {
    isDirectory = Deno.statSync(bare).isDirectory;
  } catch {
    // Nothing there yet: a new file.
  }
  if (isDirectory || basename(bare) === BASE_DIR_NAME) refuseBaseDir(bare);
  // A file of another name is one lightningd never opens, wherever it is: a copy to inspect.
  // Its directory, unless named `.lightning`, is a base dir by what its network dirs hold:
  // `~/bitcoin` beside it may be a clone of Bitcoin Core.
  else if (basename(bare) === DATABASE_NAME) {
    const dir = dirname(bare);
    if (basename(dir) === BASE_DIR_NAME || !holdsOtherThings(dir)) refuseBaseDir(dir);
  }
}

/**
 * Files lightningd and this plugin keep in a network dir: one holding any, even without its
 * hsm_secret (a disk that lost part of a node), is a node's.
 */
const NODE_FILES: readonly string[] = [
  "hsm_secret",
  DATABASE_NAME,
  "config",
  "gossip_store",
  "lightning-rpc",
  "emergency.recover",
  "accounts.sqlite3",
  LOCK_FILE,
  KEY_FILE,
];

/**
 * Whether the network-named directories of `dir` all hold files, none of them a node's (see
 * {@linkcode NODE_FILES}); an empty one is a new machine's.
 */
function holdsOtherThings(dir: string): boolean {
  const networks = statIfExists(dir)?.isDirectory ? networkDirs(dir) : [];
  if (networks.length === 0 || existsSync(`${dir}/config`)) return false;
  return networks.every((network) => {
    try {
      const names = [...Deno.readDirSync(`${dir}/${network}`)].map((entry) => entry.name);
      return names.length > 0 && !names.some((name) => NODE_FILES.includes(name));
    } catch {
      return false; // Not one this can list: a node's, as far as this can tell.
    }
  });
}

/** Refuses `dir`, where the database goes, when it is a base lightning dir (see above). */
function refuseBaseDir(dir: string): void {
  if (basename(dir) === BASE_DIR_NAME && !holdsNode(dir) && networkDirs(dir).length === 0) {
    // lightningd's default base dir, not made yet or still empty (a new machine): the restore
    // would become a file of that name, or a database there lightningd never opens. One
    // holding network dirs is left to checkNetworkDir, which names the one in use.
    const network = `${dir}/bitcoin`;
    throw new Error(
      `Cannot restore backup: "${dir}" is named as the base lightning directory, where ` +
        `lightningd never opens a database: create the network directory ` +
        `(mkdir -p ${shellQuote(network)}, or another network's) and restore into it`,
    );
  }
  if (statIfExists(dir)?.isDirectory) {
    checkNetworkDir(dir, "Cannot restore backup", (suggested) => `restore into ${suggested}`);
  }
}

/**
 * A database restored into a file backup's directory (its URL's path given as the target)
 * would sit among the backup's segments, where the operator does not look for it: refused.
 */
function refuseInside(path: string, backup: string): void {
  let inside: boolean;
  try {
    const dir = Deno.realPathSync(backup);
    const parent = Deno.realPathSync(dirname(path));
    inside = parent === dir || parent.startsWith(`${dir}/`);
  } catch {
    return; // A backup that is not there: opening it says so.
  }
  if (inside) {
    throw new Error(
      `Cannot restore backup: "${path}" is inside the backup "${backup}": restore into the ` +
        `node's lightning dir or another directory`,
    );
  }
}

/**
 * The copies `dir`'s backup.lock names; `undefined` without one, or with one the plugin could
 * not use either (it names no copy to compare).
 */
function lockCopies(dir: string): string[] | undefined {
  if (!existsSync(`${dir}/${LOCK_FILE}`)) return;
  try {
    const { sync, async } = lockDestinations(readLockFile(dir));
    return [...sync, ...async];
  } catch {
    return;
  }
}

/**
 * The note after a restore into a lightning dir whose backup.lock does not name the backup
 * restored from (a copy removed from async_urls, say, kept on its disk): those it names may be
 * copies of the same node's backup, and newer.
 */
export function unnamedNote(url: string, lockPath: string, named: string[]): string {
  return `Note: restored from ${url}, which "${lockPath}" does not name: it names ` +
    `${named.join(", ")}, which may be a newer copy of this node's backup: restore naming ` +
    `each with --also, so that restore takes the newest: a database older than the node's ` +
    `last state can make it broadcast revoked state and lose its funds.`;
}

/**
 * {@linkcode unnamedNote} after a restore from `from` into `dir`, when its backup.lock names
 * copies and none of the URLs `given`.
 */
function unnamedNotes(dir: string, given: string[], from: string): string[] {
  const named = lockCopies(dir);
  if (named === undefined || named.some((held) => given.some((url) => sameBackup(held, url)))) {
    return [];
  }
  return [unnamedNote(from, `${dir}/${LOCK_FILE}`, named)];
}

/**
 * A restore into a node's lightning dir whose backup.lock names the backup together with
 * other copies (mirror_urls, async_urls) that were not given: one of them may be newer (a
 * destination that failed under mirror_failure "degrade" gets no more changes, and the node
 * went on with the others), and a node restarted on the older state can lose its funds.
 */
function refuseUnnamedCopies(dir: string, urls: string[]): void {
  const named = lockCopies(dir);
  if (named === undefined) return;
  const missing = named.filter((held) => !urls.some((url) => sameBackup(held, url)));
  if (missing.length === 0 || missing.length === named.length) return;
  throw new Error(
    `Cannot restore backup: "${dir}/${LOCK_FILE}" names other copies of this backup, which ` +
      `may be newer: ${missing.join(", ")}: name each with --also, so that restore takes the ` +
      `newest (${missing.map((url) => `--also ${shellQuote(url)}`).join(" ")})`,
  );
}

/**
 * A restore from a Python plugin v1 file that `upgrade` converted (into the default path
 * beside it) and the plugin has written to since: the v1 file, left as it was, holds an older
 * state, and its URL is the one an operator coming from the Python plugin wrote down.
 */
function refuseConvertedV1(
  url: string,
  toVersion: number | undefined,
  acceptOlder: boolean,
  output: Output,
): void {
  const parsed = parseBackupUrl(url);
  if (parsed.scheme !== "file" || backupKind(parsed.path) !== "v1") return;
  const converted = convertedPath(parsed.path);
  if (backupKind(converted) !== "directory") return;
  const lastVersion = (from: string) => {
    const reader = openReader(from);
    try {
      return reader.describe().lastVersion;
    } finally {
      reader.close();
    }
  };
  const convertedUrl = pathToFileURL(converted).href;
  const older = lastVersion(url);
  // A point in time the v1 file holds is the same state in the backup converted from it; its
  // last version is the newest state it holds, which the node went on from.
  if (toVersion !== undefined && toVersion < older) return;
  // Refused with `fix`, or restored with a Danger line when the operator accepts it.
  const refuse = (state: string, fix: string) => {
    const why = `"${parsed.path}" is the Python plugin's v1 backup, which upgrade converted ` +
      `into ${convertedUrl}, ${state}`;
    if (!acceptOlder) {
      throw new Error(
        `Cannot restore backup: ${why}: ${fix}, or add --accept-older to restore this one all ` +
          `the same`,
      );
    }
    output.out(`Danger: restored as asked (--accept-older), though ${why}`);
  };
  let newer: number;
  try {
    newer = lastVersion(convertedUrl);
  } catch (error) {
    // It may hold changes the v1 file lacks: restoring the v1 file without a word could hand
    // back a database older than the node's.
    return refuse(
      `and that backup does not read (${(error as Error).message})`,
      "it may hold changes this file lacks; repair it or restore from another copy",
    );
  }
  if (newer > older) {
    refuse(
      `at version ${newer} against ${older} here`,
      "restore from that one (the plugin has written there since; a node started on this " +
        "older state can broadcast revoked state and lose its funds)",
    );
  }
}

/** Whether the config of the node in `dir` names `path` its database (a `wallet=` line). */
function namedByConfig(dir: string, path: string): boolean {
  try {
    return realLocation(nodeDatabase(dir, "Cannot restore backup")) === realLocation(path);
  } catch {
    return false; // A config that does not read names nothing this can go by.
  }
}

/**
 * Whether `path` is where lightningd opens a node's database: in a node's directory (its
 * hsm_secret or backup.lock, or a network dir's name), as lightningd.sqlite3 or the file its
 * config's `wallet=` names.
 */
function intoNodeDatabase(path: string): boolean {
  const dir = dirname(path);
  const node = holdsNode(dir) || existsSync(`${dir}/${LOCK_FILE}`) ||
    (NETWORKS as readonly string[]).includes(basename(dir));
  return node && (basename(path) === DATABASE_NAME || namedByConfig(dir, path));
}

/**
 * The backup's last version, read once when first asked (a pass over the whole backup); the
 * error of a backup whose end does not read (damaged past the version asked for, say).
 */
function lastVersionOnce(reader: BackupReader): () => number | Error {
  let last: number | Error | undefined;
  return () => {
    if (last !== undefined) return last;
    try {
      last = reader.describe().lastVersion;
    } catch (error) {
      if (error instanceof Interrupted) throw error;
      last = error as Error;
    }
    return last;
  };
}

/** Whether `toVersion` is the backup's last version (`last()`), or past it. */
function atLast(toVersion: number, last: () => number | Error): boolean {
  const newest = last();
  return typeof newest === "number" && toVersion >= newest;
}

/**
 * A point in time older than the backup's last version (`last()`), or one that cannot tell
 * (the backup's end does not read), restored where lightningd opens its database
 * ({@linkcode intoNodeDatabase}). "For inspection only": started on it, the node can
 * broadcast revoked state. Refused unless `acceptOlder`; then the Danger line to print once
 * it is restored.
 */
function refuseOlderIntoNode(
  path: string,
  toVersion: number | undefined,
  last: () => number | Error,
  acceptOlder: boolean,
): string | undefined {
  if (toVersion === undefined || !intoNodeDatabase(path) || atLast(toVersion, last)) return;
  const newest = last();
  const older = typeof newest === "number"
    ? `--to-version ${toVersion} is older than the backup's last version, ${newest}`
    : `the backup's last version cannot be read (${newest.message}), so --to-version ` +
      `${toVersion} may be older than it`;
  const why = `${older}, and "${dirname(path)}" is a node's directory, where lightningd would ` +
    `start on it and can broadcast revoked state and lose its funds`;
  if (!acceptOlder) {
    throw new Error(
      `Cannot restore backup: ${why}: restore it elsewhere to inspect it, or add ` +
        `--accept-older if the node is to run on this older state`,
    );
  }
  return `Danger: restored as asked (--accept-older), though ${why}`;
}

export async function restore(
  args: string[],
  output: Output = consoleOutput,
  prompt: Prompt = terminalPrompt,
): Promise<number> {
  return await runCommand(RESTORE_SPEC, args, output, async ({ values, positionals }, scope) => {
    const [url, target] = positionals;
    const toVersion = versionArg(values["to-version"], "to-version");
    // A mistyped URL is said first: backup-cli grants a command line with one no access.
    const also = (values.also as unknown as string[] | undefined) ?? []; // `multiple`: an array.
    const named = [url, ...also];
    const parsed = named.map((each) => parseBackupUrl(each));
    const twice = named.find((each, i) => named.slice(0, i).some((b) => sameBackup(b, each)));
    if (twice !== undefined) {
      // Read twice, it would count as two copies that agree.
      throw new UsageError(`${twice} is named twice: name each copy of the backup once`);
    }
    if (also.length > 0 && (values["passphrase-file"] ?? values.identity) !== undefined) {
      // restoreNewest reads plain copies only: the secret would be ignored.
      throw new UsageError(
        "--passphrase-file and --identity do not go with --also: an encrypted backup has no " +
          "copies (init and mirror make none); restore it alone, with its secret",
      );
    }
    const path = restoreTarget(userPath(target));
    refuseLightningDirMistakes(userPath(target), target.endsWith("/"));
    refuseDatabaseElsewhere(path, userPath(target), toVersion);
    scope.leaves(`nothing was written to "${dirname(path)}"`);
    refuseDanglingLink(path);
    refuseDirectoryAt(path, userPath(target));
    if (!existsSync(dirname(path))) {
      throw new Error(
        `Cannot restore backup: the directory "${dirname(path)}" does not exist: create it, ` +
          `or choose another target`,
      );
    }
    // Said before any copy is read: restoreNewest would skip each copy for it, and call the
    // newest one perhaps lagging behind those it could not restore.
    refuseOccupiedTarget(path);
    for (const backup of parsed) if (backup.scheme === "file") refuseInside(path, backup.path);
    refuseUnnamedCopies(dirname(path), named);
    if (also.length === 0) {
      refuseConvertedV1(url, toVersion, values["accept-older"] === true, output);
    }
    for (const line of removeLeftovers(dirname(path))) output.out(line);
    const nodeKey = existsSync(`${dirname(path)}/${KEY_FILE}`)
      ? `${dirname(path)}/${KEY_FILE}`
      : undefined;
    if (also.length > 0) {
      // Copies are plain (an encrypted backup has none): a node with backup.key takes none.
      if (nodeKey !== undefined) throw plainForEncryptedNode(url, nodeKey);
      return await restoreNewest(named, path, {
        toVersion,
        acceptOlder: values["accept-older"] === true,
        output,
      });
    }
    const reader = await connectReader(url, undefined, s3Unlock(url, values, prompt, nodeKey));
    try {
      await unlockReader(reader, values, prompt, nodeKey);
      const last = lastVersionOnce(reader);
      const danger = refuseOlderIntoNode(path, toVersion, last, values["accept-older"] === true);
      // Into a node's database, the backup's last version is the newest state the node starts
      // on, noted as one. Elsewhere it is not asked: that is a pass over the whole backup.
      const newest = toVersion === undefined || (intoNodeDatabase(path) && atLast(toVersion, last));
      const progress = output.progress &&
        new RestoreProgress(reader, toVersion, output.progress);
      try {
        let result: RestoreResult;
        try {
          // A file backup the plugin compacts meanwhile is read again, not called damaged.
          result = readBesideCompaction(reader, () =>
            restoreBackup(reader, path, {
              toVersion,
              onProgress: progress && ((version) => progress.update(version)),
            }));
        } catch (error) {
          throw diskFull(error, dirname(path)) ?? error;
        }
        output.out(describeRestore(result));
        if (danger !== undefined) output.out(danger);
        for (const note of restoreNotes(result, newest)) output.out(note);
        if (newest) {
          if (!existsSync(`${dirname(path)}/${LOCK_FILE}`)) output.out(aloneNote(url));
          for (const note of unnamedNotes(dirname(path), [url], url)) output.out(note);
        }
      } finally {
        progress?.done();
      }
    } finally {
      reader.close();
    }
    return Exit.Ok;
  });
}

/**
 * Restores the newest of several copies that restores, and says which, once they are known
 * to be copies of one node's backup (each holds the same node id). A copy that cannot be
 * read, or fails its checks, is skipped with a line saying why. Then, or when a readable copy
 * is newer than the one at hand, that copy may be lagging: it is refused unless
 * `acceptOlder`, since presented as current it can make the node broadcast revoked state;
 * so are copies at the newest version whose last changes differ ({@linkcode refuseDiverged}).
 * A restore to a version (`toVersion`) takes the first copy that holds it.
 */
async function restoreNewest(
  urls: string[],
  path: string,
  options: { toVersion?: number; acceptOlder: boolean; output: Output },
): Promise<number> {
  const { output } = options;
  const copies: (CopyNode & CopyFacts & { reader: BackupReader; version: number })[] = [];
  const skipped: string[] = [];
  const skip = (url: string, error: unknown) => {
    skipped.push(url);
    // Its node id's snapshot, or its restore, filled the disk: said with the place.
    output.out(`Skipped ${url}: ${(diskFull(error, dirname(path)) ?? error as Error).message}`);
  };
  const work = workPath(path, "restoring");
  try {
    for (const url of urls) {
      let reader: BackupReader | undefined;
      try {
        reader = await connectReader(url);
        const { encrypted, lastVersion: version } = reader.describe();
        if (encrypted) {
          throw new Error(
            "it is encrypted, and an encrypted backup has no copies (init and mirror make " +
              "none): restore it alone, without --also, with its secret",
          );
        }
        const facts = version === 0
          ? { nodeId: undefined, lastChange: undefined }
          : copyFacts(reader, work);
        copies.push({ url, reader, version, ...facts });
      } catch (error) {
        reader?.close();
        if (error instanceof Interrupted) throw error;
        skip(url, error);
      }
    }
    // Before the newest is chosen: another node's backup, given by mistake, may be it.
    refuseOtherNodes(copies.filter((copy) => copy.version > 0));
    copies.sort((a, b) => b.version - a.version);
    const newest = copies[0]?.version;
    const older = newest === undefined
      ? undefined
      : refuseOlderIntoNode(path, options.toVersion, () => newest, options.acceptOlder);
    // Into a node's database, a --to-version at the newest copy's last version is the newest
    // state the node starts on, checked as one.
    const pointInTime = options.toVersion !== undefined &&
      !(intoNodeDatabase(path) && newest !== undefined && atLast(options.toVersion, () => newest));
    // Not for a point in time: it is the same state in every copy that holds it.
    const diverged = !pointInTime && copies.length > 0
      ? refuseDiverged(copies, options.acceptOlder)
      : undefined;
    for (const copy of copies) {
      // A point in time is the same state in every copy that holds it: none is lagging.
      const why = pointInTime
        ? undefined
        : copy.version < newest!
        ? `another copy is at version ${newest}`
        : skipped.length > 0
        ? `${skipped.join(", ")} could not be read or restored, and may be newer`
        : undefined;
      if (why !== undefined && !options.acceptOlder) {
        throw new Error(
          `Cannot restore backup: the newest copy at hand, ${copy.url}, is at version ` +
            `${copy.version}, but ${why}: a node restarted on an older database can ` +
            `broadcast revoked state and lose its funds; repair the other copy, or pass ` +
            `--accept-older if you know the node never got past version ${copy.version}`,
        );
      }
      let result: RestoreResult;
      try {
        result = restoreBackup(copy.reader, path, { toVersion: options.toVersion });
      } catch (error) {
        if (error instanceof Interrupted) throw error;
        skip(copy.url, error);
        continue;
      }
      output.out(`${describeRestore(result)}, from ${copy.url}`);
      if (older !== undefined) output.out(older);
      if (why !== undefined) {
        output.out(
          `Danger: restored as asked (--accept-older), though ${why}: this database may be ` +
            `older than the node's; a node on it can broadcast revoked state and lose its funds`,
        );
      }
      if (diverged !== undefined && copy === copies[0]) {
        output.out(
          `Danger: restored as asked (--accept-older), though ${diverged} holds another change ` +
            `${copy.version}: if the node committed that one, this database is not the node's`,
        );
      }
      const others = copies.filter((c) => c !== copy && !skipped.includes(c.url));
      if (others.length > 0) {
        output.out(`The other copies: ${others.map((c) => `${c.url} at ${c.version}`).join(", ")}`);
      }
      for (const note of restoreNotes(result, !pointInTime)) output.out(note);
      if (!pointInTime) {
        for (const note of unnamedNotes(dirname(path), urls, copy.url)) output.out(note);
      }
      return Exit.Ok;
    }
    throw new Error(`Cannot restore backup: no copy of ${urls.join(", ")} restores (see above)`);
  } finally {
    for (const copy of copies) copy.reader.close();
  }
}
