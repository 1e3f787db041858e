/**
 * `rekey <url>`: wraps an encrypted backup's data key anew (a new passphrase, another age
 * recipient), replacing every old wrap; no record is touched. With `--key-file DIR` it also
 * writes the plugin's key file, e.g. after a node's lightning dir was rebuilt.
 *
 * @module
 */
import { type EnvReader, userPath } from "../fs/user_path.ts";
import { existsSync, statIfExists } from "../fs/exists.ts";
import { LOCK_FILE, type LockFile, readLockFile } from "../backup/lock_file.ts";
import { readChain } from "../format/chain.ts";
import {
  UnlockError,
  unwrapKey,
  wrapKey,
  WRAPPED_KEY_NAME,
  wrapsOf,
} from "../crypto/wrapped_key.ts";
import { readWrappedKey } from "../crypto/wrapped_key_file.ts";
import { lockRekey } from "../backends/file/rekey_lock.ts";
import { backupKind } from "../backends/open.ts";
import { wrapCost } from "./wrap_cost.ts";
import { storeKeyFile } from "./store_key_file.ts";
import { KEY_FILE, keyFileBytes, writeKeyFile } from "../crypto/key_file.ts";
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
  askNewPassphrase,
  checkNewPassphrase,
  checkNewRecipients,
  givenPassphrase,
  NEW_PASSPHRASE_ENV,
  type Prompt,
  SECRET_HELP,
  SECRET_OPTIONS,
  terminalPrompt,
} from "./secrets.ts";
import { s3Unlock, unlockDir } from "./unlock.ts";
import { parseBackupUrl, sameBackup } from "../backends/url.ts";
import {
  fetchWrappedKey,
  IfMatchRefusedError,
  replaceWrappedKey,
} from "../backends/s3/key_object.ts";
import { KeyMayBeStoredError, type KeyReplaced } from "../backends/key_replaced.ts";
import { loadCredentials } from "../backends/s3/credentials.ts";
import { type DataKey, keyIdOf, sameBytes } from "../crypto/data_key.ts";
import { v2Credential } from "../backends/socket/credential.ts";
import { socketUrl } from "../backends/socket/backend.ts";
import { CopiedBackupReader } from "../backends/socket/copy_reader.ts";
import { sendWrappedKey } from "../backends/socket/rekey.ts";
import { DEFAULT_RETRY_POLICY } from "../backends/socket/options.ts";
import { cliCommand } from "../fs/advised_command.ts";

const ACTION = "Cannot rekey backup";

const REKEY_HELP =
  `Usage: cln-backup rekey <url> [--new-passphrase-file F] [--new-recipient AGE1...]
                        [--key-file DIR] [--no-if-match]

Wraps the data key of the encrypted backup at <url> (file:///abs/path, s3://bucket/prefix,
or a server's over wire v2 with CLN_BACKUP_CREDENTIAL: its key.json is fetched and the new
one sent back) for a new passphrase and/or age recipient, replacing every wrap it had:
afterwards only the new secrets open it.
No record is re-encrypted (the data key stays; the plugin's key file stays valid), so it is
quick and safe beside a running plugin. key.json is replaced atomically (a file renamed into
place; in S3, the object stored whole). A second rekey of a file backup while one runs is
refused; one of an S3 or server backup that another rekey replaced since it read it stores
nothing (an S3 service without If-Match, or a server older than this cln-backup,
cannot check that: it says so; one that refuses If-Match with the ETags it gives is refused,
and --no-if-match then replaces key.json whatever it holds).
Killed after key.json was replaced, the same command run again finishes: the new
passphrase given then opens the key, and it says so.

The current secret opens the key first (below). The new passphrase comes from
CLN_BACKUP_NEW_PASSPHRASE, --new-passphrase-file F, or is asked twice on a terminal.

Options:
  --new-passphrase-file F  the new passphrase, the first line of F
  --new-recipient AGE1...  wrap the key for this age X25519 recipient
  --key-file DIR           also write the plugin's key file DIR/backup.key (mode 0600), for
                           a lightning dir that lost it; alone, it rewraps nothing.
                           Refused when DIR/backup.lock names another backup, or
                           DIR/backup.key holds another backup's key
  --no-if-match            S3: store key.json with a plain PUT, not only over the one read,
                           for a service that refuses If-Match with the ETags it gives; run
                           it only while no other rekey of the backup runs
  --passphrase-file F, --identity F  the current secret
  -h, --help               show this help

${SECRET_HELP}`;

export const REKEY_SPEC: CommandSpec = {
  name: "rekey",
  action: ACTION,
  help: REKEY_HELP,
  options: {
    ...SECRET_OPTIONS,
    "new-passphrase-file": { type: "string" },
    "new-recipient": { type: "string" },
    "key-file": { type: "string" },
    "no-if-match": { type: "boolean" },
  },
  positionals: ["url"],
};

/** The new passphrase given, or asked twice on a terminal when nothing new is given. */
async function newPassphrase(
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
): Promise<string | undefined> {
  const given = givenPassphrase(values["new-passphrase-file"], NEW_PASSPHRASE_ENV);
  if (given !== undefined || values["new-recipient"] !== undefined) return given;
  const typed = await askNewPassphrase(prompt, "New passphrase", ACTION);
  if (typed === undefined) {
    throw new Error(
      `${ACTION}: give the new secret: CLN_BACKUP_NEW_PASSPHRASE, --new-passphrase-file F, ` +
        `--new-recipient AGE1..., or run it on a terminal`,
    );
  }
  return typed;
}

/** The `rekey` command; `env` names a server backup's credential (CLN_BACKUP_CREDENTIAL). */
export async function rekey(
  args: string[],
  output: Output = consoleOutput,
  prompt: Prompt = terminalPrompt,
  env: EnvReader = Deno.env,
): Promise<number> {
  return await runCommand(REKEY_SPEC, args, output, async ({ values, positionals }) => {
    const url = positionals[0];
    const scheme = parseBackupUrl(url).scheme;
    const recipient = values["new-recipient"];
    await checkNewRecipients(ACTION, typeof recipient === "string" ? [recipient] : []);
    if (values["no-if-match"] && scheme !== "s3") {
      throw new UsageError("--no-if-match is for an S3 backup (s3://) alone");
    }
    const keyFileDir = values["key-file"];
    if (typeof keyFileDir === "string") checkKeyFileFor(url, userPath(keyFileDir));
    const backup = scheme === "s3"
      ? await s3Backup(url, values, prompt)
      : scheme === "socket"
      ? await serverBackup(url, values, prompt, env)
      : fileBackup(fileBackupPath(url, ACTION), values, prompt);
    try {
      // Before any prompt: the key id in key.json tells whether backup.key holds this key.
      if (typeof keyFileDir === "string") {
        checkHeldKey(url, userPath(keyFileDir), backup.wrapped.keyId);
      }
      const key = await openKey(backup, values, output);
      if (key !== "done") await rewrap(backup, key, values, prompt, output);
    } finally {
      backup.close?.();
    }
    return Exit.Ok;
  });
}

/** An encrypted backup to rekey: its key.json, how to open it, and where its new wraps go. */
interface Rekeyed {
  name: string;
  backupId: Uint8Array;
  /** Its key.json: where it was read (for messages), its bytes and the id of its key. */
  wrapped: { where: string; bytes: Uint8Array; keyId: Uint8Array };
  /** Opens its key with the current secret (given, or asked for on a terminal). */
  open(): Promise<DataKey>;
  /** Stores `wrapped` as its key.json; a line to say after the rekey's, if any. */
  store(wrapped: Uint8Array): Promise<string | void>;
  /** Removes what opening it fetched (a server's copy), or releases its lock. */
  close?(): void;
}

/**
 * The key of `backup`, opened with the current secret; else with the new passphrase, which
 * opens it when an earlier rekey to it replaced key.json but was killed before it said so:
 * the same command run again then finishes. A key.json already wrapped for the new
 * recipient alone is the end of such a rekey too: `"done"`, nothing left to do.
 */
async function openKey(
  backup: Rekeyed,
  values: Record<string, string | boolean | undefined>,
  output: Output,
): Promise<DataKey | "done"> {
  try {
    return await backup.open();
  } catch (error) {
    if (!(error instanceof UnlockError)) throw error;
    const { where, bytes, keyId } = backup.wrapped;
    const fresh = givenPassphrase(values["new-passphrase-file"], NEW_PASSPHRASE_ENV);
    const opened = fresh
      ? await unwrapKey(bytes, where, backup.backupId, keyId, [{ passphrase: fresh }])
        .catch(() => undefined)
      : undefined;
    if (opened) {
      output.out(
        `Note: the current secret given does not open the key of "${backup.name}", but the new ` +
          `passphrase given opens it: an earlier rekey to it replaced key.json already (one ` +
          `interrupted before it said so, or run twice); wrapping it again`,
      );
      return opened;
    }
    const recipient = values["new-recipient"];
    const wraps = wrapsOf(bytes);
    if (
      fresh === undefined && typeof recipient === "string" && values["key-file"] === undefined &&
      !wraps.passphrase && wraps.recipients.join() === recipient
    ) {
      output.out(
        `The key of "${backup.name}" is already wrapped for ${recipient} alone: an earlier ` +
          `rekey to it replaced key.json already (one interrupted before it said so, or run ` +
          `twice); nothing changed`,
      );
      return "done";
    }
    // unwrapKey's line ends asking "a wrong passphrase or identity?": one more answer.
    throw new Error(
      `${error.message.replace(/\?$/, "")}, or, if an earlier rekey of it was interrupted, the ` +
        `new secret that one was given, which may open it now: give that one`,
    );
  }
}

/** Stores the key wrapped for the new secrets, and writes the key file `--key-file` names. */
async function rewrap(
  backup: Rekeyed,
  key: DataKey,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
  output: Output,
): Promise<void> {
  const keyFileOnly = values["key-file"] !== undefined && values["new-recipient"] === undefined &&
    values["new-passphrase-file"] === undefined && Deno.env.get(NEW_PASSPHRASE_ENV) === undefined;
  const passphrase = keyFileOnly ? undefined : await newPassphrase(values, prompt);
  if (!keyFileOnly) checkNewPassphrase(ACTION, passphrase);
  // The key file first: it holds the same key whatever the wraps, and a failure to write it
  // then leaves key.json as it was, where the operator takes the exit code to say so.
  const keyFile = typeof values["key-file"] === "string" ? userPath(values["key-file"]) : undefined;
  if (keyFile !== undefined) writeKeyFile(keyFile, key);
  if (!keyFileOnly) {
    const recipient = values["new-recipient"];
    const recipients = typeof recipient === "string" ? [recipient] : [];
    const note = await storeWrapped(
      backup,
      await wrapKey(key, backup.backupId, { passphrase, recipients }, wrapCost()),
    );
    const what = [passphrase !== undefined ? "a new passphrase" : [], ...recipients].flat();
    output.out(
      `Rewrapped the key of "${backup.name}" for ${what.join(" and ")}; the old secrets no ` +
        `longer open it. No record changed`,
    );
    if (note) output.out(note);
  }
  if (keyFile !== undefined) {
    output.out(`Wrote the plugin's key file "${keyFile}/${KEY_FILE}" (mode 0600)`);
  }
}

/**
 * Stores `wrapped` as `backup`'s key.json; one sent whose answer was lost may be in force:
 * the operator who typed the new secret must not take the failure for "nothing changed".
 */
async function storeWrapped(backup: Rekeyed, wrapped: Uint8Array): Promise<string | void> {
  try {
    return await backup.store(wrapped);
  } catch (error) {
    if (!(error instanceof KeyMayBeStoredError)) throw error;
    throw new Error(
      `${error.message}: ${WRAPPED_KEY_NAME} may hold the new wraps all the same: keep the ` +
        `new secret, and run the same rekey again, which finishes it or says which secret ` +
        `opens the key now`,
    );
  }
}

/**
 * Refuses `--key-file DIR` when DIR is not a directory, or when its backup.lock names other
 * backups than `url`: the key written there would replace that node's own, and its plugin
 * would not start.
 */
function checkKeyFileFor(url: string, dir: string): void {
  if (!statIfExists(dir)?.isDirectory) {
    throw new Error(
      `${ACTION}: --key-file names "${dir}", which is not a directory: give the node's ` +
        `lightning dir, where the plugin reads ${KEY_FILE}; nothing was changed`,
    );
  }
  if (!existsSync(`${dir}/${LOCK_FILE}`)) return;
  let lock: LockFile;
  try {
    lock = readLockFile(dir);
  } catch {
    return; // Not one this can read: the plugin and doctor say what is wrong with it.
  }
  const listed = (value: unknown) =>
    Array.isArray(value) ? value.filter((u): u is string => typeof u === "string") : [];
  const urls = [lock.backend_url, ...listed(lock.mirror_urls), ...listed(lock.async_urls)];
  if (urls.some((held) => sameBackup(held, url))) return;
  throw new Error(
    `${ACTION}: "${dir}/${LOCK_FILE}" names ${lock.backend_url}, not ${url}: its key ` +
      `written there would replace that node's own, and its plugin would not start: give the ` +
      `URL backup.lock names, or the lightning dir of the node ${url} belongs to; nothing ` +
      `was changed`,
  );
}

/**
 * Refuses `--key-file DIR` when DIR/backup.key holds another key than the backup's (id
 * `keyId`): it would be replaced, and the backup it opens (a node whose backup.lock is not
 * back yet) would be sealed for good. One that holds no key (damaged) is what this repairs.
 */
function checkHeldKey(url: string, dir: string, keyId: Uint8Array): void {
  const path = `${dir}/${KEY_FILE}`;
  let held: Uint8Array | undefined;
  try {
    // Not followed: a symlink is replaced, whatever it points to is not.
    if (!Deno.lstatSync(path).isFile) return;
    held = keyFileBytes(Deno.readTextFileSync(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw new Error(
      `${ACTION}: cannot read "${path}" (${(error as Error).message}) to tell whether it ` +
        `holds another backup's key, which writing this one would replace: fix its ` +
        `permissions, or move it away; nothing was changed`,
    );
  }
  if (held === undefined || sameBytes(keyIdOf(held), keyId)) return;
  throw new Error(
    `${ACTION}: "${path}" holds another key than ${url}'s: written there, this one would ` +
      `replace it, and the backup it opens could no longer be read or written: give the ` +
      `lightning dir of the node ${url} belongs to, or, if that key is no longer needed, ` +
      `move it away first; nothing was changed`,
  );
}

function notEncrypted(name: string): Error {
  return new Error(
    `${ACTION}: "${name}" is not encrypted: "${cliCommand("upgrade", "--encrypt")}" makes an ` +
      `encrypted copy of it`,
  );
}

/**
 * A file backup, locked against another rekey until closed: two at once would both say they
 * rewrapped the key, and only the last one's secret would open it. The plugin takes no part:
 * it never reads key.json.
 */
function fileBackup(
  path: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
): Rekeyed {
  // The Python plugin's file: plain, and no directory to lock or hold a key.json.
  if (backupKind(path) === "v1") throw notEncrypted(path);
  const lock = lockForRekey(path);
  try {
    const chain = readChain(path);
    if (chain.keyId === undefined) throw notEncrypted(path);
    return {
      name: path,
      backupId: chain.backupId,
      wrapped: wrappedIn(path, path, chain.keyId),
      open: async () => (await unlockDir(path, values, prompt))!,
      store: (wrapped) => Promise.resolve(storeKeyFile(ACTION, path, wrapped)),
      close: () => lock[Symbol.dispose](),
    };
  } catch (error) {
    lock[Symbol.dispose]();
    throw error;
  }
}

/** key.json of the backup directory `dir`, shown as `name`'s. */
function wrappedIn(dir: string, name: string, keyId: Uint8Array): Rekeyed["wrapped"] {
  const where = `${name}/${WRAPPED_KEY_NAME}`;
  return { where, bytes: readWrappedKey(dir, `"${where}"`), keyId };
}

/** Takes the rekey lock of the backup directory `dir`, or refuses: another rekey holds it. */
function lockForRekey(dir: string): Disposable {
  const lock = lockRekey(dir);
  if (!lock) {
    throw new Error(
      `${ACTION}: another rekey is running on "${dir}" (it holds the backup directory's ` +
        `lock): wait for it to finish, then run this again; nothing was changed`,
    );
  }
  return lock;
}

/**
 * An S3 backup: its key.json object is replaced whole (S3 swaps an object atomically), and
 * only if it is still the one read: a second rekey run meanwhile (at this one's prompt, say)
 * would else have its new secret replaced by this one's, and its operator locked out.
 */
async function s3Backup(
  url: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
): Promise<Rekeyed> {
  const noIfMatch = values["no-if-match"] === true;
  const credentials = loadCredentials(undefined);
  const { backupId, wrapped } = await fetchWrappedKey(url, credentials);
  if (!wrapped) throw notEncrypted(url);
  return {
    name: url,
    backupId,
    wrapped: { ...wrapped, where: `${url}/${WRAPPED_KEY_NAME}` },
    open: () => s3Unlock(url, values, prompt)(wrapped, backupId),
    store: async (bytes) => {
      let replaced: KeyReplaced;
      try {
        replaced = await replaceWrappedKey(url, credentials, wrapped, bytes, !noIfMatch);
      } catch (error) {
        if (!(error instanceof IfMatchRefusedError)) throw error;
        // A read that lagged another rekey's write would show that one's key.json now.
        throw new Error(
          `${error.message}: run the same rekey again; refused again, run it with ` +
            `--no-if-match while no other rekey of this backup runs`,
        );
      }
      if (replaced === "checked") return;
      const why = noIfMatch
        ? `key.json of "${url}" was stored with a plain PUT (--no-if-match)`
        : wrapped.etag === undefined
        ? `the S3 service of "${url}" gave key.json no ETag (it was stored with a plain PUT)`
        : `the S3 service of "${url}" does not implement If-Match (a PUT only over the ` +
          `object read)`;
      return `Note: ${why}: this rekey could not check that no other rekey replaced ` +
        `key.json since it read it: if another ran meanwhile, its secret no longer opens ` +
        `the backup (this one's does)`;
    },
  };
}

/** A server's backup (wire v2): its key.json read from a fetched copy, the new one sent back. */
async function serverBackup(
  url: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
  env: EnvReader,
): Promise<Rekeyed> {
  const credential = v2Credential(url, env);
  if (!credential) {
    throw new Error(
      `${ACTION}: a server's backup is rekeyed over wire v2: name the node's credential in ` +
        `CLN_BACKUP_CREDENTIAL`,
    );
  }
  const target = socketUrl(url);
  const { timeoutMs } = DEFAULT_RETRY_POLICY;
  const copy = await CopiedBackupReader.fetch(url, target, timeoutMs, credential);
  try {
    const dir = copy.local.dir;
    const chain = readChain(dir);
    if (chain.keyId === undefined) throw notEncrypted(url);
    const backupWrapped = wrappedIn(dir, url, chain.keyId);
    return {
      name: url,
      backupId: chain.backupId,
      wrapped: backupWrapped,
      open: async () => (await unlockDir(dir, values, prompt, { url }))!,
      store: async (wrapped) => {
        const read = backupWrapped.bytes;
        if (await sendWrappedKey(target, credential, read, wrapped, timeoutMs) === "checked") {
          return;
        }
        return `Note: the server at ${url} is older than this cln-backup: it could not check ` +
          `that no other rekey replaced key.json since this one read it: if another ran ` +
          `meanwhile, its secret no longer opens the backup (this one's does); update the server`;
      },
      close: () => copy.close(),
    };
  } catch (error) {
    copy.close();
    throw error;
  }
}
