/**
 * `init [--lightning-dir DIR | DIR] <url>`: creates a backup of a node and sets the node up to
 * keep it (backup.lock, the least-privilege launcher, the config line to add); with `<url>`
 * alone, an empty backup (a server's storage) and nothing else.
 *
 * @module
 */
import { userPath } from "../fs/user_path.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { DataKey, sameBytes } from "../crypto/data_key.ts";
import { checkExisting, existingHint } from "./existing.ts";
import { installPlugin, printConfigLine } from "./install_plugin.ts";
import { checkLaunchable } from "./launcher.ts";
import { newEncryption } from "./new_encryption.ts";
import {
  checkLeftEncryption,
  leftByKilledInit,
  whyNotOpened,
  whyNotSnapshotOf,
} from "./init_rerun.ts";
import { createCopies, initCopies, type MadeCopies } from "./init_copies.ts";
import { KEY_FILE, readKeyFile, removeKeyFileOf, writeKeyFile } from "../crypto/key_file.ts";
import { checkNewRecipients, type Prompt, terminalPrompt } from "./secrets.ts";
import { backupKind, openReader } from "../backends/open.ts";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { LOCK_FILE, type LockFile, readLockFile } from "../backup/lock_file.ts";
import { type BackupUrl, parseBackupUrl } from "../backends/url.ts";
import { credentialIn } from "../backends/socket/credential.ts";
import { createS3Backup } from "../backends/s3/create.ts";
import { checkPluginCredentials, loadCredentials } from "../backends/s3/credentials.ts";
import { checkNetworkDir, checkNotRunning, refuseKeyFile } from "./node_dir.ts";
import { nodeDatabase } from "./node_database.ts";
import { removeLeftovers, removeLeftoversOf } from "../fs/work_path.ts";
import { atStep } from "../fs/step_seam.ts";
import { lockForSetup } from "./setup_lock.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  fileBackupPath,
  type Output,
  runCommand,
  UsageError,
} from "./args.ts";
import {
  createBackup,
  createOrFind,
  INIT_ACTION,
  type MadeBackup,
  MayHaveStoredError,
} from "./new_backup.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { type DeviceOf, deviceOf } from "../backup/same_disk.ts";
import { warnIfSameDisk } from "./same_disk_warning.ts";

const ACTION = INIT_ACTION;

const INIT_HELP = `Usage: cln-backup init --lightning-dir DIR <url>
       cln-backup init DIR <url>
       cln-backup init --lightning-dir DIR <url> --encrypt [--recipient AGE1...]
       cln-backup init --lightning-dir DIR <url> --existing
       cln-backup init <url>

With a lightning dir DIR (as an option, or before <url> as the Python plugin's first README
had it), it creates a backup of that node and writes what lightningd needs to keep it:
  1. the backup at <url> (file:///abs/path: a new directory; s3://bucket/prefix: objects
     under an empty prefix, the keys from AWS_* or DIR/backup-s3.credentials), holding a
     consistent snapshot of DIR/lightningd.sqlite3 (or the file a wallet=sqlite3://PATH line
     of lightningd's config names) at its data_version, taken with SQLite's online backup API;
     empty at version 0 when DIR has no database yet (a node that has not started);
  2. DIR/cln-backup-plugin, the launch script lightningd runs: Deno named by absolute path,
     the plugin allowed to read only backup.lock and the backup and to write only the backup;
  3. DIR/backup.lock, {"backend_url": "<url>"}, which tells the plugin where the backup is.
It ends with the line to add to the lightningd config: important-plugin=<DIR>/cln-backup-plugin.
When the backup and every copy are files on the database's filesystem (DIR's, with no database
yet), it warns on stderr: one disk failure would lose them all. Put the backup on another disk,
or add a copy on one or a remote one (--mirror, --async, or "mirror" later).

With <url> alone it creates an empty backup at version 0 and touches no lightning dir, as the
Python backup-cli does: the storage a backup server serves ("server <url> <addr:port>").

The argument with a scheme (file:, socket:, s3:) is the URL; the other one is DIR. Two URLs, two
directories, or DIR given twice are usage errors.

Options:
  --lightning-dir DIR  the network directory lightningd runs plugins in, where hsm_secret and
                       lightningd.sqlite3 live (for example ~/.lightning/bitcoin)
  --encrypt            encrypt the backup (a file:/// or s3:// one, or a server's over wire
                       v2, which stores only what it cannot read): every record is sealed
                       with a new random data key, wrapped in <url>/key.json for a passphrase
                       (CLN_BACKUP_PASSPHRASE, --passphrase-file FILE, or asked twice on a
                       terminal) and/or an age recipient; the plugin gets the data key in
                       DIR/backup.key (mode 0600). Keep the passphrase or identity apart
                       from the node: without it the backup cannot be restored.
  --recipient AGE1...  wrap the data key for this age X25519 recipient (with --encrypt)
  --passphrase-file F  the passphrase, the first line of F (with --encrypt)
  --mirror URL         another synchronous destination (backup.lock's mirror_urls), created
                       from the same snapshot; repeatable
  --async URL          an asynchronous destination (backup.lock's async_urls), created from
                       the same snapshot; repeatable. The launcher grants each destination
                       what it needs (a file backup's path, a remote one's host:port and
                       keys' file) and nothing else
  --existing           set the node up again on the backup at <url> it was restored from
                       (after "restore <url> DIR" on a new machine): nothing is created;
                       the backup must end at the database's version and restore, here,
                       to a database equal to it row for row. It is read with what the
                       plugin will use (a server's with DIR/backup.credential, an S3
                       one's with DIR/backup-s3.credentials, put back first); an
                       encrypted one with its passphrase or identity (CLN_BACKUP_PASSPHRASE,
                       --passphrase-file F, CLN_BACKUP_IDENTITY, --identity F), whose key
                       goes to DIR/backup.key
  --identity F         an age identity file (as age-keygen writes), with --existing
  -h, --help           show this help

It refuses, changing nothing:
  - a backup that already exists at <url>, or a backup.lock already in DIR. The one exception
    is what an init killed before writing backup.lock leaves: a complete backup at <url>
    holding a snapshot at the database's version, equal to one of the database now, and no
    change; init finishes its set-up;
  - another init or upgrade running on DIR (each holds a lock on DIR while it works);
  - without --encrypt, a key file DIR/backup.key (the plugin refuses one beside a plain backup);
  - a lightningd running on DIR: it connects to DIR/lightning-rpc (a running lightningd
    accepts; a socket left by a dead one refuses) and reads the pid file lightningd keeps in
    the base dir (DIR/../lightningd-<network>.pid), checking in /proc that the process is a
    lightningd;
  - DIR that looks like the base lightning dir (~/.lightning) rather than a network
    directory: no hsm_secret or lightningd.sqlite3, but network subdirectories (bitcoin,
    testnet, signet, regtest, ...) or a config file. It names the directory to use instead.
A step that fails undoes the ones before it. Work files that a killed init, restore or
upgrade left beside the backup or in DIR (*.snapshot-PID, *.creating-PID, ...) are removed
first, one line each.`;

export const INIT_SPEC: CommandSpec = {
  name: "init",
  action: ACTION,
  help: INIT_HELP,
  options: {
    "lightning-dir": { type: "string" },
    encrypt: { type: "boolean" },
    recipient: { type: "string" },
    "passphrase-file": { type: "string" },
    identity: { type: "string" },
    mirror: { type: "string", multiple: true },
    async: { type: "string", multiple: true },
    existing: { type: "boolean" },
  },
  positionals: ["url"],
  otherForms: [["lightning-dir", "url"]],
};

/** What init sets up: the backup at `url`, and the node in `dir` when one is given. */
export interface InitTarget {
  url: string;
  /** The lightning dir as the operator typed it. */
  dir?: string;
}

/** An argument naming a backup has a scheme (`file:`, `socket:`); any other is a path. */
function isUrlArgument(arg: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(arg);
}

const FORMS = `"init --lightning-dir <dir> <url>" or "init <lightning-dir> <url>"`;

/**
 * Tells init's forms apart by which argument is a URL: `<url>` (with or without
 * `--lightning-dir`) and the Python CLI's first form, `<lightning-dir> <url>`.
 */
export function initTarget(positionals: string[], lightningDir: string | undefined): InitTarget {
  const urls = positionals.filter(isUrlArgument);
  const dirs = positionals.filter((arg) => !isUrlArgument(arg));
  const quoted = (args: string[]) => args.map((arg) => `"${arg}"`).join(" and ");
  let wrong: string | undefined;
  if (urls.length > 1) wrong = `two URLs, ${quoted(urls)}`;
  else if (dirs.length > 1) wrong = `two directories, ${quoted(dirs)}`;
  else if (urls.length === 0) wrong = `no <url> (an argument such as file:///abs/path)`;
  else if (dirs.length === 1 && lightningDir !== undefined) {
    wrong = `two lightning dirs, "${dirs[0]}" and --lightning-dir "${lightningDir}"`;
  }
  if (wrong !== undefined) throw new UsageError(`"init" got ${wrong}: use ${FORMS}`);
  return { url: urls[0], dir: dirs[0] ?? lightningDir };
}

/** `init <url>` alone: an empty backup for a server to serve, and no node set up. */
async function initStorage(url: string, output: Output): Promise<number> {
  if (parseBackupUrl(url).scheme === "s3") {
    await createS3Backup(url, loadCredentials(undefined));
    output.out(`Created the empty backup ${url} at version 0, and no backup.lock`);
    return Exit.Ok;
  }
  const path = fileBackupPath(url, ACTION);
  if (existsSync(path)) {
    throw new Error(
      `${ACTION}: "${path}" already exists: choose a new path, or remove it if it is not ` +
        `a backup you need`,
    );
  }
  createFileBackup(path);
  output.out(
    `Created the empty backup "${path}" at version 0, and no backup.lock: no lightning dir ` +
      `was given (to back up a node, give its network directory: init --lightning-dir DIR ` +
      `<url>)`,
  );
  return Exit.Ok;
}

/** The key `dir`'s key file holds, if there is one; refuses one the plugin would refuse. */
async function keyFileIn(dir: string): Promise<DataKey | undefined> {
  try {
    return await readKeyFile(dir);
  } catch (error) {
    throw new Error(`${ACTION}: ${(error as Error).message.replace(/^Cannot start backup: /, "")}`);
  }
}

/** Where an encrypted backup's key is, and what to keep apart from the node. */
function encryptedNote(output: Output, dir: string): void {
  output.out(
    `The backup is encrypted; the plugin's key is in "${dir}/${KEY_FILE}" (mode 0600). ` +
      `Keep the passphrase or age identity apart from the node (a password manager, ` +
      `paper): restore and verify need it, and without it the backup cannot be read`,
  );
}

export async function init(
  args: string[],
  output: Output = consoleOutput,
  prompt: Prompt = terminalPrompt,
  device: DeviceOf = deviceOf,
): Promise<number> {
  return await runCommand(INIT_SPEC, args, output, async ({ values, positionals }) => {
    const target = initTarget(
      positionals,
      values["lightning-dir"] === undefined ? undefined : String(values["lightning-dir"]),
    );
    const encrypt = values.encrypt === true;
    if (values.recipient !== undefined && !encrypt) {
      throw new UsageError("--recipient goes with --encrypt");
    }
    if (values["passphrase-file"] !== undefined && !encrypt && values.existing !== true) {
      throw new UsageError("--passphrase-file goes with --encrypt or --existing");
    }
    if (values.identity !== undefined && values.existing !== true) {
      throw new UsageError(
        "--identity goes with --existing (a new encrypted backup takes --recipient age1...)",
      );
    }
    if (encrypt && target.dir === undefined) {
      throw new Error(
        `${ACTION}: --encrypt needs the node's lightning dir, where the plugin's key file goes ` +
          `(a backup server's storage holds plain backups only, wire v1)`,
      );
    }
    // Before anything could name it: an interrupted init's backup is checked against it.
    if (typeof values.recipient === "string") await checkNewRecipients(ACTION, [values.recipient]);
    const { mirrors, asyncs } = initCopies(values);
    const copies = [...mirrors, ...asyncs];
    if (values.existing === true && (target.dir === undefined || encrypt || copies.length > 0)) {
      throw new UsageError(
        "--existing takes a lightning dir and one URL, without --encrypt (an encrypted " +
          "backup's key comes from it), --mirror or --async",
      );
    }
    if (copies.length > 0 && target.dir === undefined) {
      throw new UsageError("--mirror and --async go with the node's lightning dir");
    }
    const named = [target.url, ...copies];
    const twice = named.find((u, i) => named.indexOf(u) !== i);
    if (twice !== undefined) throw new UsageError(`"init" got "${twice}" twice`);
    // A mistyped URL is said first: backup-cli grants a command line with one no access.
    for (const each of named) parseBackupUrl(each);
    if (encrypt && copies.length > 0) {
      throw new Error(
        `${ACTION}: --encrypt takes one destination: an encrypted backup's copies would need ` +
          `its key; init without --mirror and --async`,
      );
    }
    if (target.dir === undefined) return await initStorage(target.url, output);
    const { url } = target;
    const lock: LockFile = {
      backend_url: url,
      ...(mirrors.length > 0 ? { mirror_urls: mirrors } : {}),
      ...(asyncs.length > 0 ? { async_urls: asyncs } : {}),
    };
    const scheme = parseBackupUrl(url).scheme;
    if (encrypt && scheme === "socket" && !credentialIn(target.dir)) {
      throw new Error(
        `${ACTION}: --encrypt takes a file:/// or s3:// backup, or a server's with the ` +
          `node's backup.credential (wire v2): a server of wire v1 stores what it is sent, so ` +
          `it would hold the node's database in the clear`,
      );
    }
    const path = scheme === "file" ? fileBackupPath(url, ACTION) : undefined;
    const dir = userPath(target.dir);
    checkNetworkDir(dir, ACTION);
    checkLaunchable(dir, lock);
    using _setup = lockForSetup(dir, ACTION);
    await checkNotRunning(dir, ACTION);
    // A killed init's work paths are beside each file destination it was making, copies too.
    const files = [url, ...copies].filter((each) => parseBackupUrl(each).scheme === "file");
    const beside = files.map((each) => fileBackupPath(each, ACTION));
    const removed = [
      ...removeLeftovers(dir),
      ...beside.flatMap((path) => removeLeftoversOf(path)),
    ];
    for (const line of removed) output.out(line);
    if (existsSync(`${dir}/${LOCK_FILE}`)) {
      let current = "";
      let todo = "to start over, move backup.lock aside first";
      try {
        const { backend_url } = readLockFile(dir);
        current = ` (it points to ${backend_url})`;
        // The Python plugin's file is named as its operator chose (its README: file.bkp).
        const parsed = parseBackupUrl(backend_url);
        if (parsed.scheme === "file" && backupKind(parsed.path) === "v1") {
          todo = `it is the Python plugin's v1 backup: convert it with ` +
            `"${
              cliCommand("upgrade", `--lightning-dir ${shellQuote(dir)}`)
            }" instead (it writes the launcher too); ${todo}`;
        }
      } catch {
        // Unreadable: the path alone says enough.
      }
      throw new Error(
        `${ACTION}: "${dir}/${LOCK_FILE}" already exists${current}: this node has a backup ` +
          `already: ${todo}`,
      );
    }
    // Said now, not at lightningd's start (an older encrypted set-up's key, or an interrupted
    // "init --encrypt"'s).
    if (!encrypt && values.existing !== true) {
      refuseKeyFile(dir, ACTION, "init", "an older encrypted backup's");
    }
    const setup: NodeSetup = {
      url,
      dir,
      lock,
      database: nodeDatabase(dir, ACTION),
      copies,
      encrypt,
      values,
      prompt,
      output,
      device,
    };
    if (values.existing === true) return await takeExisting(setup, scheme);
    if (path === undefined) return await initRemote(setup, scheme);
    return await initFile(setup, path);
  });
}

/** What init sets a node up with, as its checks leave it. */
interface NodeSetup {
  url: string;
  dir: string;
  lock: LockFile;
  /** The node's database (node_database.ts; perhaps none yet). */
  database: string;
  /** The `--mirror` and `--async` destinations. */
  copies: string[];
  encrypt: boolean;
  values: Record<string, string | boolean | undefined>;
  prompt: Prompt;
  output: Output;
  /** The filesystem id, for the warning of a backup on the database's disk. */
  device: DeviceOf;
}

/** `init --existing`: takes a backup the node's database was restored from as its own. */
async function takeExisting(
  { url, dir, lock, database, values, prompt, output, device }: NodeSetup,
  scheme: BackupUrl["scheme"],
): Promise<number> {
  // Read as the plugin will read it: with the keys' file, its only source of keys.
  if (scheme === "s3") checkPluginCredentials(dir, ACTION);
  const found = await checkExisting(url, dir, database, values, prompt);
  // A key file put back with the rest is kept when it holds the backup's key; any other
  // would stop the plugin at start (a plain backup with a key, or another backup's key).
  const held = await keyFileIn(dir);
  if (held !== undefined && !(found.key && sameBytes(held.bytes, found.key.bytes))) {
    throw new Error(
      `${ACTION}: "${dir}/${KEY_FILE}" holds ${
        found.key ? "another backup's key" : `a key, but the backup ${url} is not encrypted`
      }: the plugin would refuse to start with it; move it aside, then run this again`,
    );
  }
  const writeKey = held === undefined ? found.key : undefined;
  if (writeKey) writeKeyFile(dir, writeKey);
  const launcher = installPlugin(dir, lock, "create", () => {
    if (writeKey) removeKeyFileOf(dir, writeKey);
  });
  output.out(
    `Took the backup ${url} as this node's: it restores to "${database}", at version ` +
      `${found.version}; the plugin goes on from there`,
  );
  output.out(`Wrote "${dir}/${LOCK_FILE}" and the launcher "${launcher}"`);
  if (found.key) encryptedNote(output, dir);
  warnIfSameDisk(lock, dir, database, output, device);
  printConfigLine(output, launcher);
  return Exit.Ok;
}

/** init to a backup server (`socket:`) or object storage (`s3://`). */
async function initRemote(
  { url, dir, lock, database, copies, encrypt, values, prompt, output }: NodeSetup,
  scheme: BackupUrl["scheme"],
): Promise<number> {
  if (scheme === "s3") checkPluginCredentials(dir, ACTION);
  // Made when the backup is to be made (on a server: not when an interrupted init's is
  // found there, opened by the key file it left and the secret given now). Its passphrase
  // is asked before connecting, unless such a key file is here: the connection would
  // wait while the operator types.
  let encryption = encrypt && !existsSync(`${dir}/${KEY_FILE}`)
    ? await newEncryption(values, prompt)
    : undefined;
  const initKey = encrypt
    ? {
      make: async () => encryption ??= await newEncryption(values, prompt),
      whyNotOpened: (copy: string) => whyNotOpened(copy, values, prompt),
    }
    : undefined;
  let made: MadeBackup;
  try {
    made = await createOrFind(database, url, dir, initKey);
  } catch (error) {
    // The key file goes with the backup not made, unless the server may hold it.
    if (encryption && !(error instanceof MayHaveStoredError)) {
      removeKeyFileOf(dir, encryption.key);
    }
    throw error;
  }
  const { version } = made;
  const madeCopies = await createCopies(copies, database, dir, version, output);
  atStep("init-before-lock");
  // A snapshot on a server stays there; a retry of init finds it while the database is
  // unchanged (lib/cli/left_on_server.ts).
  const launcher = installPlugin(dir, madeCopies.tied(lock), "create", madeCopies.undo);
  output.out(
    made.found
      ? `Found the backup ${url} an interrupted init left, a snapshot of "${database}" at ` +
        `version ${version} and no change: finished its set-up`
      : existsSync(database)
      ? `Created the backup ${url} from a snapshot of "${database}" at version ${version}`
      : `Created the empty backup ${url} at version 0 (no database at "${database}" yet)`,
  );
  output.out(`Wrote "${dir}/${LOCK_FILE}" and the launcher "${launcher}"`);
  if (encrypt) encryptedNote(output, dir);
  printConfigLine(output, launcher);
  return Exit.Ok;
}

/** init to a file backup at `path`, or finishing the one an interrupted init left there. */
async function initFile(
  { url, dir, lock, database, copies, encrypt, values, prompt, output, device }: NodeSetup,
  path: string,
): Promise<number> {
  let left: { version: number } | undefined;
  if (existsSync(path)) {
    const found = leftByKilledInit(path, database);
    if ("why" in found) {
      let last: number | undefined;
      try {
        const reader = openReader(url);
        last = reader.describe().lastVersion;
        reader.close();
      } catch {
        // Not a backup that reads: the path alone says enough.
      }
      throw new Error(
        `${ACTION}: "${path}" already exists${found.why}: choose a new path, or remove it ` +
          `if it is not a backup you need${existingHint(last, database)}`,
      );
    }
    await checkLeftEncryption(path, dir, encrypt);
    const unopened = encrypt ? await whyNotOpened(path, values, prompt) : undefined;
    if (unopened) {
      throw new Error(
        `${ACTION}: "${path}", which an interrupted init left, is not this init's: ` +
          `${unopened}`,
      );
    }
    const other = await whyNotSnapshotOf(
      path,
      database,
      found.version,
      encrypt ? await keyFileIn(dir) : undefined,
    );
    if (other) {
      throw new Error(
        `${ACTION}: "${path}" already exists${other}: choose a new path, or remove it if it ` +
          `is not a backup you need`,
      );
    }
    left = found;
  }
  const encryption = encrypt && left === undefined
    ? await newEncryption(values, prompt)
    : undefined;
  atStep("init-checked");
  // The key file first: an init killed after the backup is made finds it beside it.
  if (encryption) writeKeyFile(dir, encryption.key);
  const version = left?.version ?? await createBackup(path, database, encryption);
  // A backup an earlier init left is kept: it is that init's, and complete.
  const undoBackup = () => {
    if (left !== undefined) return;
    removeIfExists(path);
    if (encryption) removeIfExists(`${dir}/${KEY_FILE}`);
  };
  let made: MadeCopies;
  try {
    made = await createCopies(copies, database, dir, version, output);
  } catch (error) {
    undoBackup();
    throw error;
  }
  atStep("init-before-lock");
  const launcher = installPlugin(dir, made.tied(lock), "create", () => {
    made.undo();
    undoBackup();
  });
  if (left !== undefined) {
    output.out(
      `Found the backup "${path}" an interrupted init left, complete at the database's ` +
        `version ${version} with no change: finished its set-up`,
    );
  } else {
    output.out(
      existsSync(database)
        ? `Created the backup "${path}" from a snapshot of "${database}" at version ${version}`
        : `Created the empty backup "${path}" at version 0 (no database at "${database}" yet)`,
    );
  }
  output.out(`Wrote "${dir}/${LOCK_FILE}" and the launcher "${launcher}"`);
  if (encrypt) encryptedNote(output, dir);
  warnIfSameDisk(lock, dir, database, output, device);
  printConfigLine(output, launcher);
  return Exit.Ok;
}
