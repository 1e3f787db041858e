/**
 * `upgrade [--lightning-dir DIR] [--to <url>]`: converts the Python plugin's v1 `.dbak` file
 * that `backup.lock` names into a cln-backup directory holding every version it held, then
 * points `backup.lock` at it.
 *
 * @module
 */
import { userPath } from "../fs/user_path.ts";
import { createHash, type Hash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { V1BackupReader } from "../backends/v1/reader.ts";
import { convertedPath } from "../backends/v1/converted.ts";
import { renameIntoPlace, writeBase } from "../backends/file/create.ts";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { createEmptyLog, FileBackend } from "../backends/file/writer.ts";
import { newBackupId } from "../format/segment.ts";
import { syncDir, writeAll, writeFileDurably } from "../fs/durable.ts";
import { LOCK_FILE, type LockFile, readLockFile } from "../backup/lock_file.ts";
import type { BackupDescription, BackupReader } from "../backends/backend.ts";
import { type BackupUrl, BackupUrlError, parseBackupUrl } from "../backends/url.ts";
import { copyToS3 } from "../backends/s3/copy.ts";
import { checkPluginCredentials, loadCredentials } from "../backends/s3/credentials.ts";
import { S3BackupReader } from "../backends/s3/reader.ts";
import { fetchWrappedKey } from "../backends/s3/key_object.ts";
import { backupKind } from "../backends/open.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import {
  checkNetworkDir,
  checkNotRunning,
  refuseKeyBesidePlain,
  refuseKeyFile,
} from "./node_dir.ts";
import { installPlugin, printConfigLine } from "./install_plugin.ts";
import { LAUNCHER_NAME } from "./launcher.ts";
import { claimWorkPath, removeLeftovers, removeLeftoversOf, workPath } from "../fs/work_path.ts";
import { atStep } from "../fs/step_seam.ts";
import { lockForSetup } from "./setup_lock.ts";
import { type NewEncryption } from "../backends/file/create.ts";
import { copyEncrypted } from "../backends/file/encrypted_copy.ts";
import { readChain } from "../format/chain.ts";
import { readLayout } from "../format/layout.ts";
import { describeWraps, UnlockError, WRAPPED_KEY_NAME, wrapsOf } from "../crypto/wrapped_key.ts";
import { readWrappedKey } from "../crypto/wrapped_key_file.ts";
import { KEY_FILE, readKeyFile, writeKeyFile } from "../crypto/key_file.ts";
import { type DataKey, sameBytes } from "../crypto/data_key.ts";
import { unlockDir } from "./unlock.ts";
import { newEncryption } from "./new_encryption.ts";
import { encryptOnServer } from "./upgrade_server.ts";
import { checkNewRecipients, givenPassphrase, type Prompt, terminalPrompt } from "./secrets.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  fileBackupPath,
  type Output,
  runCommand,
  UsageError,
} from "./args.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { isOutOfRoom } from "../fs/os_error.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { lockDestinations } from "../backends/multi/mirrors.ts";
import { type DeviceOf, deviceOf } from "../backup/same_disk.ts";
import { warnIfSameDisk } from "./same_disk_warning.ts";

const ACTION = "Cannot upgrade backup";
/** Whose a key file beside a plain backup being upgraded may be. */
const KILLED_ENCRYPT = `an interrupted "upgrade --encrypt"'s`;

/** What goes of the Python plugin's set-up of the node in `dir`. */
function pythonConfig(dir: string): string {
  return "Replace the Python plugin's plugin= or important-plugin= line in the config (or " +
    "remove its backup.py from lightningd's plugins directory), and remove any " +
    `backup-destination= line; "${
      cliCommand("doctor", `--lightning-dir ${shellQuote(dir)}`)
    }" then checks that only cln-backup's plugin loads.`;
}

const UPGRADE_HELP = `Usage: cln-backup upgrade [--lightning-dir DIR] [--to <url>]
       cln-backup upgrade [--lightning-dir DIR] [--to <url>] --encrypt [--recipient AGE1...]
       cln-backup upgrade <v1-url> [--to <url>]

Converts the v1 .dbak backup of the Python backup plugin, the one DIR/backup.lock names, into
a cln-backup backup holding every version the v1 file holds (its snapshot and each change
after it), so the plugin continues it and "restore --to-version N" works for every N from the
v1 snapshot on. The cln-backup plugin refuses to start on a v1 file until this has run.

Steps: with lightningd stopped, it builds the new backup beside its final path and renames it
into place, checks that it ends at the v1 file's last version, writes the launcher
DIR/cln-backup-plugin, then rewrites DIR/backup.lock atomically to the new URL (other keys are
kept). The v1 file is left untouched: delete it once "cln-backup verify <new url>" says OK.
When the new backup, and every copy backup.lock names, are files on the database's filesystem,
it warns on stderr: one disk failure would lose them all (--to another disk, or add a copy
with "mirror").
Finally, replace the Python plugin's plugin= or important-plugin= line in the lightningd config
with the line printed last. Going back to the Python plugin from a converted backup is not
supported: keep the v1 file until you are sure.

Options:
  --lightning-dir DIR  the network directory holding backup.lock (for example
                       ~/.lightning/bitcoin); default: the current directory
  --to <url>           where to create the new backup (file:///abs/path, must not exist);
                       default: the v1 path without ".dbak", plus ".clnb"; with --encrypt
                       and a cln-backup backup, its path plus ".encrypted". An
                       s3://bucket/prefix (an empty prefix; the keys from AWS_* or
                       DIR/backup-s3.credentials) takes a v1 file, or moves a plain
                       cln-backup backup there: its newest snapshot and the changes after it
  --encrypt            make the new backup encrypted, as "init --encrypt" does (the key
                       wrapped for the passphrase and/or --recipient, DIR/backup.key for the
                       plugin). With a plain cln-backup backup in backup.lock it copies every
                       base, log and record into an encrypted backup, keeping every version,
                       and repoints backup.lock; the plain backup is left: delete it after
                       "verify" says OK, as it holds the node's database in the clear. With
                       --to s3://..., the S3 copy is encrypted (its newest snapshot and the
                       changes after it, as without --encrypt); beside a plain S3 backup,
                       --encrypt --to s3://NEW makes its encrypted copy on an empty prefix.
                       A plain backup on a wire v2 server (socket: with DIR/backup.credential)
                       is encrypted in place, keeping every version: the node seals a copy in
                       DIR/cln-backup-scratch and uploads it, the server swaps it in whole
                       and deletes the plain files; backup.lock keeps its URL
  --recipient AGE1...  with --encrypt: wrap the key for this age X25519 recipient
  --passphrase-file F  with --encrypt: the passphrase, the first line of F
  -h, --help           show this help

"upgrade <v1-url>" converts a v1 file alone, on a machine with no lightning dir: the Python
"backup-cli server"'s storage. With the Python server stopped, it builds the new backup (at
--to, a file:/// URL, or the default above) as above and prints the server's command line for
it; the nodes keep their socket: URLs. It refuses --lightning-dir and --encrypt.

It refuses while lightningd runs on DIR (detected as "init --help" explains), without
--encrypt when DIR/backup.key holds a key (the plugin refuses one beside a plain backup), when
the new path exists (but for the whole copy an upgrade killed before it rewrote backup.lock
left there, whose set-up it finishes; an encrypted one if it is wrapped for the secrets given
now, no other, and they open it), and when backup.lock names neither a v1 file nor a
cln-backup backup (for one, already upgraded, it says so and exits with 0). A failure leaves
backup.lock as it was.`;

export const UPGRADE_SPEC: CommandSpec = {
  name: "upgrade",
  action: ACTION,
  help: UPGRADE_HELP,
  options: {
    "lightning-dir": { type: "string" },
    to: { type: "string" },
    encrypt: { type: "boolean" },
    recipient: { type: "string" },
    "passphrase-file": { type: "string" },
  },
  positionals: [],
  // The Python server's storage: a v1 file with no lightning dir.
  otherForms: [["v1-url"]],
};

/**
 * Writes the v1 backup's entries into the new backup directory `dir`: each snapshot as a
 * base segment (streamed through a temporary file), each change appended to the log.
 */
export async function convert(
  v1: V1BackupReader,
  dir: string,
  encryption?: NewEncryption,
): Promise<void> {
  const key = encryption?.key;
  if (encryption) writeFileDurably(dir, WRAPPED_KEY_NAME, encryption.wrappedKey);
  createEmptyLog(dir, encryption?.backupId ?? newBackupId(), key?.id);
  // One sync at the end: the directory is renamed into place only after this succeeds.
  const log = FileBackend.open(pathToFileURL(dir).href, dir, { syncOnClose: true, key });
  const snapshotCopy = `${dir}/snapshot.tmp`;
  let snapshot: Deno.FsFile | undefined;
  try {
    for (const entry of v1.entries()) {
      switch (entry.kind) {
        case "snapshot-part":
          snapshot ??= Deno.openSync(snapshotCopy, { write: true, create: true, truncate: true });
          writeAll(snapshot, entry.bytes);
          break;
        case "snapshot-end":
          snapshot?.close();
          snapshot = undefined;
          writeBase(
            dir,
            { version: entry.version, path: snapshotCopy },
            { backupId: log.backupId, firstLog: log.liveSequence, key },
          );
          Deno.removeSync(snapshotCopy);
          break;
        case "change":
          await log.append({ version: entry.version, statements: entry.statements });
      }
    }
  } finally {
    snapshot?.close();
    log.close();
  }
}

/**
 * Where upgrade puts the converted backup: `--to`, else beside the v1 file, as `.clnb`; an
 * encrypted copy of a cln-backup directory (`encrypt`), as `<dir>.encrypted`.
 */
export function upgradeUrl(
  path: string,
  to: string | boolean | undefined,
  encrypt: string | boolean | undefined = false,
): string {
  if (typeof to === "string") return to;
  if (encrypt && backupKind(path) === "directory") return pathToFileURL(`${path}.encrypted`).href;
  return pathToFileURL(convertedPath(path)).href;
}

/**
 * backup.lock's URL, parsed. The Python plugin opened `urlparse(url).path`, relative to
 * lightningd's directory `dir`, so "file:/abs" or "file:name" worked for it: a URL that
 * cln-backup refuses is named as backup.lock's, with the URL to write there.
 */
function lockUrl(dir: string, lock: LockFile): BackupUrl {
  const url = lock.backend_url;
  try {
    return parseBackupUrl(url);
  } catch (error) {
    if (!(error instanceof BackupUrlError)) throw error;
    const where = `"${dir}/${LOCK_FILE}" names "${url}"`;
    const path = /^file:(?:\/\/[^/]*)?([^?#]+)/i.exec(url)?.[1];
    if (path === undefined) {
      throw new Error(
        `${ACTION}: ${where}, which cln-backup cannot use (${error.why}): correct it there, ` +
          `then run upgrade again`,
      );
    }
    const read = resolve(dir, path);
    throw new Error(
      `${ACTION}: ${where}, which the Python plugin read as "${read}" but cln-backup does not ` +
        `take (${error.why}): write "${pathToFileURL(read).href}" there, then run upgrade again`,
    );
  }
}

function notV1(path: string): Error {
  return new Error(
    `${ACTION}: "${path}", which backup.lock names, is not a v1 backup of the Python ` +
      `plugin: check backup.lock`,
  );
}

/** `verify` of the backup at `url` as the operator types it: S3 keys go by the environment. */
function verifyCommand(url: string): string {
  const keys = parseBackupUrl(url).scheme === "s3"
    ? "AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… "
    : "";
  return `${keys}${cliCommand("verify", shellQuote(url))}`;
}

/**
 * Copies the backup backup.lock names (a v1 file, a plain cln-backup directory or a plain S3
 * backup: its newest snapshot and the changes after it) into a new S3 backup at `url`,
 * encrypted when `newKey` gives a key, checks that it reads back to the same last version,
 * then points backup.lock at it.
 */
async function upgradeToS3(
  dir: string,
  lock: LockFile,
  from: { name: string; kind: "v1" | "directory" | "s3"; open: () => Promise<BackupReader> },
  url: string,
  newKey: () => Promise<NewEncryption | undefined>,
  output: Output,
): Promise<number> {
  const { name, kind } = from;
  await checkNotRunning(dir, ACTION);
  checkPluginCredentials(dir, ACTION);
  const encryption = await newKey();
  const source = await from.open();
  let before: BackupDescription;
  try {
    before = source.describe();
  } catch (error) {
    source.close();
    throw error;
  }
  const credentials = loadCredentials(dir);
  try {
    await copyToS3(url, credentials, source.entries(), undefined, encryption);
  } finally {
    source.close();
  }
  // Read back whole: with the new key, every record is opened on the way.
  const key = encryption?.key;
  const unlock = key && (() => Promise.resolve(key));
  const reader = await S3BackupReader.fetch(url, credentials, undefined, undefined, unlock);
  let after: BackupDescription;
  try {
    after = reader.describe();
  } finally {
    reader.close();
  }
  if (after.lastVersion !== before.lastVersion) {
    throw new Error(
      `${ACTION}: the S3 backup ends at version ${after.lastVersion}, the old one at ` +
        `${before.lastVersion}: backup.lock was not changed; remove the objects under ${url} ` +
        `before trying again, and please report this`,
    );
  }
  if (key) writeKeyFile(dir, key);
  const launcher = installPlugin(dir, { ...lock, backend_url: url }, "replace", () => {
    if (key) removeIfExists(`${dir}/${KEY_FILE}`);
  });
  output.out(
    `Copied "${name}" into ${url} (versions ${after.firstVersion} to ${after.lastVersion}, ` +
      `${after.records} records${key ? ", encrypted" : ""}); "${name}" is untouched`,
  );
  output.out(
    `"${dir}/${LOCK_FILE}" now names ${url}; check it with "${verifyCommand(url)}", then ` +
      `delete the old backup when you like` +
      (key ? ` (until then it holds the node's database in the clear)` : ""),
  );
  if (kind === "v1") {
    output.out(pythonConfig(dir));
  }
  printConfigLine(output, launcher);
  return Exit.Ok;
}

/**
 * `upgrade --encrypt --to s3://NEW` beside a plain S3 backup: an encrypted copy of it (its
 * newest snapshot and the changes after it), which backup.lock then names.
 */
async function encryptS3(
  dir: string,
  lock: LockFile,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
  output: Output,
): Promise<number> {
  const url = lock.backend_url;
  const credentials = loadCredentials(dir);
  const { wrapped } = await fetchWrappedKey(url, credentials);
  if (values.encrypt !== true) {
    refuseKeyBesidePlain(
      dir,
      ACTION,
      url,
      () => !wrapped,
      "again, to an empty prefix (--to s3://…)",
    );
  }
  if (values.encrypt !== true || wrapped) {
    const what = wrapped ? `, encrypted: nothing to upgrade ("rekey" changes its secret)` : (
      `: nothing to upgrade ("--encrypt --to s3://..." makes an encrypted copy)`
    );
    output.out(`"${dir}/${LOCK_FILE}" already names a cln-backup backup (${url})${what}`);
    return Exit.Ok;
  }
  const to = values.to;
  if (typeof to !== "string" || parseBackupUrl(to).scheme !== "s3") {
    throw new Error(
      `${ACTION}: "${url}" is an S3 backup: name the empty prefix its encrypted copy goes to ` +
        `with --to s3://bucket/prefix`,
    );
  }
  const from = {
    name: url,
    kind: "s3" as const,
    open: () => S3BackupReader.fetch(url, credentials),
  };
  const newKey = () => newEncryption(values, prompt, ACTION);
  return await upgradeToS3(dir, lock, from, to, newKey, output);
}

/**
 * A copy that filled its file system, said with the place and what to do: the writer's error
 * is the plugin's (it says to restart lightningd), Deno's names no path. `undefined` for
 * another error.
 */
function diskFull(error: unknown, dir: string): Error | undefined {
  if (!isOutOfRoom(error)) return undefined;
  return new Error(
    `${ACTION}: the file system of "${dir}" is full (no space or quota left); nothing was ` +
      `changed: free some space on it, or choose another place with --to, then run upgrade ` +
      `again`,
  );
}

/**
 * Builds the copy of `source` (a v1 file, or a plain backup to encrypt) at `path`: beside it
 * first, renamed into place once it ends at the source's last version, so a failure never
 * leaves a half-made backup. Returns the source's description.
 */
async function build(
  source: V1BackupReader | FileBackupReader,
  sourcePath: string,
  url: string,
  path: string,
  encryption: NewEncryption | undefined,
): Promise<BackupDescription> {
  const before = source.describe();
  const building = workPath(path, "upgrading");
  Deno.mkdirSync(dirname(building), { recursive: true });
  const claim = claimWorkPath(building, "directory");
  try {
    if (source instanceof V1BackupReader) await convert(source, building, encryption);
    else copyEncrypted(sourcePath, building, encryption!);
    const converted = new FileBackupReader(url, building, { key: encryption?.key });
    const after = converted.describe();
    if (after.lastVersion !== before.lastVersion) {
      throw new Error(
        `${ACTION}: the converted backup ends at version ${after.lastVersion}, the old one ` +
          `at ${before.lastVersion}: nothing was changed; please report this`,
      );
    }
    // Every record of the copy is read back, opened with the new key.
    if (encryption) { for (const _ of converted.entries()) continue; }
    atStep("upgrade-building");
    renameIntoPlace(building, path);
    syncDir(dirname(path));
  } catch (error) {
    removeIfExists(building);
    throw diskFull(error, dirname(path)) ?? error;
  } finally {
    claim.close();
  }
  return before;
}

/**
 * A digest of what restore applies for each version up to each of `snapshots`' successors:
 * per snapshot, its bytes and the changes after it, before the next.
 */
function restorable(reader: BackupReader, snapshots: number[]): string[] {
  return (snapshots.length === 0 ? [undefined] : snapshots).map((_, i) => {
    let hash: Hash = createHash("sha256");
    let inSnapshot = false;
    const next = snapshots[i + 1];
    for (const entry of reader.entries(next === undefined ? undefined : next - 1)) {
      if (entry.kind === "snapshot-part") {
        // A v1 file yields its older snapshots too: restore starts over at each.
        if (!inSnapshot) hash = createHash("sha256").update(`s${entry.version}\n`);
        inSnapshot = true;
        hash.update(entry.bytes);
      } else if (entry.kind === "snapshot-end") {
        inSnapshot = false;
        hash.update(`e${entry.totalBytes}\n`);
      } else if (entry.kind === "change") {
        hash.update(`c${entry.version}\n${JSON.stringify(entry.statements)}\n`);
      }
    }
    return hash.digest("hex");
  });
}

/**
 * The source's description when `path` holds what an upgrade of it killed before it rewrote
 * backup.lock leaves: a cln-backup directory (encrypted with `key`, or plain without) with the
 * source's snapshots, versions and content, and no torn end. backup.lock still names the
 * source, so no plugin has written there since (a server's storage has no backup.lock to
 * tell: "upgrade <v1-url>" refuses it instead); the plugin may have written to the source,
 * and a rewind stores another change at the same version, so versions alone do not tell a
 * stale copy.
 */
function leftByKilledUpgrade(
  source: V1BackupReader | FileBackupReader,
  url: string,
  path: string,
  key: DataKey | undefined,
): BackupDescription | undefined {
  if (backupKind(path) !== "directory" || readLayout(path).logs.length === 0) return undefined;
  const before = source.describe();
  const reader = new FileBackupReader(url, path, { key });
  try {
    const keyId = readChain(path).keyId;
    if (keyId === undefined ? key !== undefined : !key || !sameBytes(keyId, key.id)) {
      return undefined;
    }
    const after = reader.describe();
    const same = after.tornBytes === 0 && after.firstVersion === before.firstVersion &&
      after.lastVersion === before.lastVersion &&
      after.snapshots.join() === before.snapshots.join() &&
      restorable(reader, after.snapshots).join() === restorable(source, before.snapshots).join();
    return same ? before : undefined;
  } catch {
    return undefined; // Not a backup that reads whole: not one to finish.
  } finally {
    reader.close();
  }
}

/**
 * The key of the encrypted copy at `path` that an `upgrade --encrypt` killed before it rewrote
 * backup.lock left (its key file beside backup.lock then stops the plugin on the plain
 * backup): opened with the secret given now, which the operator keeps, or with a recipient
 * alone, the key file when the copy is wrapped for it. `undefined` when there is none.
 */
async function leftKey(
  path: string,
  dir: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
): Promise<DataKey | undefined> {
  let keyId: Uint8Array | undefined;
  try {
    keyId = backupKind(path) === "directory" ? readChain(path).keyId : undefined;
  } catch {
    return undefined; // Not a backup that reads: refused as a path that exists.
  }
  if (keyId === undefined) return undefined;
  const notOpened = (why: string) =>
    new Error(
      `${ACTION}: "${path}", which an interrupted upgrade left, ${why}: give the secret the ` +
        `interrupted upgrade was given, or move it aside and run upgrade again`,
    );
  const recipient = values.recipient;
  // Before it is named in a refusal: an identity in its place is a secret.
  if (typeof recipient === "string") await checkNewRecipients(ACTION, [recipient]);
  const passphrase = givenPassphrase(values["passphrase-file"]) !== undefined;
  const wrapped = readWrappedKey(path);
  const wraps = wrapsOf(wrapped);
  if (typeof recipient === "string" && !passphrase && !wraps.recipients.includes(recipient)) {
    throw notOpened(`is not wrapped for the recipient given, ${recipient}`);
  }
  // Opened by one secret, it must be wrapped for those this run would wrap for, no other:
  // the operator keeps those to restore with, and may have stopped the run over another.
  const wanted = typeof recipient === "string" ? [recipient] : [];
  const asked = passphrase || wanted.length === 0;
  if (wraps.passphrase !== asked || wraps.recipients.join() !== wanted.join()) {
    throw notOpened(
      `is wrapped for ${describeWraps(wrapped).join(" and ")}, not for the secrets given`,
    );
  }
  if (typeof recipient === "string" && !passphrase) {
    // One the plugin would refuse is not this upgrade's to take.
    const held = await readKeyFile(dir).catch(() => undefined);
    return held && sameBytes(held.id, keyId) ? held : undefined;
  }
  try {
    return await unlockDir(path, values, prompt);
  } catch (error) {
    if (!(error instanceof UnlockError)) throw error;
    const why = error.message.replace(/^Cannot unlock backup: /, "");
    throw notOpened(`does not open with the secret given (${why})`);
  }
}

/**
 * `upgrade <v1-url>`: converts a v1 file that no lightning dir names (the Python server's
 * storage) and says how to serve the result.
 */
async function upgradeFile(
  v1Url: string,
  values: Record<string, string | boolean | undefined>,
  output: Output,
): Promise<number> {
  for (const option of ["lightning-dir", "encrypt", "recipient", "passphrase-file"]) {
    if (values[option] !== undefined) {
      throw new UsageError(
        `"upgrade <v1-url>" converts a v1 file alone and takes no --${option}: to convert a ` +
          `node's backup, give its directory (upgrade --lightning-dir DIR), not the URL`,
      );
    }
  }
  const v1Path = fileBackupPath(v1Url, ACTION);
  const kind = backupKind(v1Path);
  if (kind === "directory") {
    output.out(`"${v1Path}" is a cln-backup backup already: nothing to upgrade`);
    return Exit.Ok;
  }
  if (kind === "missing") throw new Error(`${ACTION}: nothing at "${v1Path}": check the URL`);
  if (kind !== "v1") {
    throw new Error(
      `${ACTION}: "${v1Path}" is not a v1 backup of the Python plugin: check the URL`,
    );
  }
  const url = upgradeUrl(v1Path, values.to);
  const path = fileBackupPath(url, ACTION);
  if (existsSync(path)) {
    throw new Error(
      `${ACTION}: "${path}" already exists: choose another path with --to, or move it ` +
        `aside if it is not a backup you need`,
    );
  }
  for (const line of removeLeftoversOf(path)) output.out(line);
  const before = await build(new V1BackupReader(v1Url, v1Path), v1Path, url, path, undefined);
  output.out(
    `Converted "${v1Path}" (versions ${before.firstVersion} to ${before.lastVersion}, ` +
      `${before.records} records) into "${path}"; the v1 file is untouched`,
  );
  output.out(
    `Serve it instead of the v1 file: in the Python server's command line (a systemd ` +
      `unit's ExecStart=), put cln-backup's backup-cli for the Python one, ${url} for ` +
      `${v1Url}, and add --allow-v1; the address and --log-mode stay, and the nodes keep ` +
      `their socket: URL. Check it with "${verifyCommand(url)}", then delete the v1 file ` +
      `when you like`,
  );
  return Exit.Ok;
}

/**
 * `--encrypt` makes a new encrypted backup of the first destination alone: copies beside it
 * would stay plain, which the plugin, given the key, refuses (and a plain copy is in the clear).
 */
function refuseCopies(lock: LockFile): void {
  // An empty list (a hand edit) names no copy.
  const { sync, async } = lockDestinations(lock);
  if (sync.length === 1 && async.length === 0) return;
  throw new Error(
    `${ACTION}: backup.lock names other destinations beside ${lock.backend_url}, and ` +
      `encrypting one of several is not done yet: make a new encrypted set-up with "init --encrypt", ` +
      `of one destination (copies of an encrypted backup are not made yet)`,
  );
}

export async function upgrade(
  args: string[],
  output: Output = consoleOutput,
  prompt: Prompt = terminalPrompt,
  device: DeviceOf = deviceOf,
): Promise<number> {
  return await runCommand(UPGRADE_SPEC, args, output, async ({ values, positionals }) => {
    // A mistyped URL is said first: backup-cli grants a command line with one no access.
    if (typeof values.to === "string") parseBackupUrl(values.to);
    if (positionals.length === 1) return await upgradeFile(positionals[0], values, output);
    const dir = userPath(String(values["lightning-dir"] ?? "."));
    checkNetworkDir(dir, ACTION);
    using _setup = lockForSetup(dir, ACTION);
    if (!existsSync(`${dir}/${LOCK_FILE}`)) {
      throw new Error(
        `${ACTION}: no ${LOCK_FILE} in "${dir}": pass the network directory the Python ` +
          `plugin ran in with --lightning-dir (for example ~/.lightning/bitcoin)`,
      );
    }
    const lock = readLockFile(dir);
    const scheme = lockUrl(dir, lock).scheme;
    if (values.encrypt === true) refuseCopies(lock);
    if (scheme === "s3") return await encryptS3(dir, lock, values, prompt, output);
    if (scheme === "socket" && values.encrypt !== true && !existsSync(`${dir}/${LAUNCHER_NAME}`)) {
      // The Python plugin's remote set-up: the server's storage is converted on the server
      // ("upgrade <v1-url>" there); the node keeps its URL and needs only the launcher.
      await checkNotRunning(dir, ACTION);
      const launcher = installPlugin(dir, lock, "replace", () => {});
      output.out(
        `"${dir}/${LOCK_FILE}" names the backup server ${lock.backend_url}: nothing to convert ` +
          `on the node (a Python server's storage is converted on its machine, with ` +
          `"${cliCommand("upgrade", "<its url>")}"); wrote the plugin's launcher "${launcher}"`,
      );
      output.out(pythonConfig(dir));
      printConfigLine(output, launcher);
      return Exit.Ok;
    }
    if (scheme === "socket") return await encryptOnServer(dir, lock, values, prompt, output);
    const v1Path = fileBackupPath(lock.backend_url, ACTION);
    const kind = backupKind(v1Path);
    if (kind === "missing") {
      throw new Error(
        `${ACTION}: backup.lock names "${v1Path}", which does not exist: check backup.lock`,
      );
    }
    const encrypt = values.encrypt === true;
    if (typeof values.to === "string" && parseBackupUrl(values.to).scheme === "s3") {
      if (kind !== "v1" && kind !== "directory") throw notV1(v1Path);
      if (!encrypt) refuseKeyFile(dir, ACTION, "upgrade", KILLED_ENCRYPT);
      const newKey = () =>
        encrypt ? newEncryption(values, prompt, ACTION) : Promise.resolve(undefined);
      if (kind === "directory" && readChain(v1Path).keyId !== undefined) {
        throw new Error(
          `${ACTION}: "${v1Path}" is encrypted, and copying an encrypted backup to S3 is not ` +
            `done yet: keep it on its file:/// destination, or "init --encrypt" a new S3 backup`,
        );
      }
      const from = {
        name: v1Path,
        kind,
        open: () =>
          Promise.resolve(
            kind === "v1"
              ? new V1BackupReader(lock.backend_url, v1Path)
              : new FileBackupReader(lock.backend_url, v1Path),
          ),
      };
      return await upgradeToS3(dir, lock, from, values.to, newKey, output);
    }
    if (kind === "directory" && !encrypt) {
      refuseKeyBesidePlain(
        dir,
        ACTION,
        lock.backend_url,
        () => readChain(v1Path).keyId === undefined,
      );
    }
    if (kind === "directory" && (!encrypt || readChain(v1Path).keyId !== undefined)) {
      const what = encrypt ? `, encrypted: nothing to upgrade ("rekey" changes its secret)` : (
        ": nothing to upgrade"
      );
      output.out(
        `"${dir}/${LOCK_FILE}" already names a cln-backup backup (${lock.backend_url})${what}`,
      );
      return Exit.Ok;
    }
    if (kind !== "v1" && kind !== "directory") throw notV1(v1Path);
    await checkNotRunning(dir, ACTION);
    if (!encrypt) refuseKeyFile(dir, ACTION, "upgrade", KILLED_ENCRYPT);
    const url = upgradeUrl(v1Path, values.to, encrypt);
    const path = fileBackupPath(url, ACTION);
    const source = kind === "v1"
      ? new V1BackupReader(lock.backend_url, v1Path)
      : new FileBackupReader(lock.backend_url, v1Path);
    // An upgrade killed once its copy was in place is finished, not refused: moving to --to
    // would leave that stale copy where restore of the v1 file looks, and a killed --encrypt
    // left the key file that stops the plugin on the plain backup.
    const leftWith = existsSync(path) && encrypt
      ? await leftKey(path, dir, values, prompt)
      : undefined;
    const left = existsSync(path) && (!encrypt || leftWith)
      ? leftByKilledUpgrade(source, url, path, leftWith)
      : undefined;
    if (existsSync(path) && left === undefined) {
      throw new Error(
        `${ACTION}: "${path}" already exists: choose another path with --to, or move it ` +
          `aside if it is not a backup you need`,
      );
    }

    for (const line of [...removeLeftovers(dir), ...removeLeftoversOf(path)]) output.out(line);
    const encryption = encrypt && !left ? await newEncryption(values, prompt, ACTION) : undefined;
    const before = left ?? await build(source, v1Path, url, path, encryption);
    const key = encryption?.key ?? leftWith;
    if (key) writeKeyFile(dir, key);
    atStep("upgrade-before-lock");
    const upgraded = { ...lock, backend_url: url };
    const launcher = installPlugin(
      dir,
      upgraded,
      "replace",
      () => {
        // A conversion found stays, for the next run to finish as this one did.
        if (!left) Deno.removeSync(path, { recursive: true });
        // backup.lock names the plain backup still, which the plugin refuses beside a key.
        if (key) removeIfExists(`${dir}/${KEY_FILE}`);
      },
    );
    const old = kind === "v1" ? "the v1 file" : "the plain backup";
    const copy = kind === "v1" ? "conversion" : "encrypted copy";
    output.out(
      left
        ? `Found "${path}", the whole ${copy} of "${v1Path}" (versions ` +
          `${before.firstVersion} to ${before.lastVersion}${key ? ", encrypted" : ""}) that an ` +
          `interrupted upgrade left: finished its set-up; ${old} is untouched`
        : (
          `Converted "${v1Path}" (versions ${before.firstVersion} to ${before.lastVersion}, ` +
          `${before.records} records) into "${path}"${encryption ? ", encrypted" : ""}; ${old} ` +
          `is untouched`
        ),
    );
    output.out(
      `"${dir}/${LOCK_FILE}" now names ${url}; check the new backup with ` +
        `"${verifyCommand(url)}", then delete ${old} when you like` +
        (key ? ` (until then it holds the node's database in the clear)` : ""),
    );
    if (kind === "v1") {
      output.out(pythonConfig(dir));
    }
    warnIfSameDisk(upgraded, dir, undefined, output, device);
    printConfigLine(output, launcher);
    return Exit.Ok;
  });
}
