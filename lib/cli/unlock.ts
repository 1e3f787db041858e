/**
 * Opens an encrypted backup's data key for a CLI command, from `key.json` in the backup (a
 * file in a directory, an object in S3) and the secrets the operator gives (see secrets.ts).
 *
 * @module
 */
import type { BackupReader } from "../backends/backend.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { CopiedBackupReader } from "../backends/socket/copy_reader.ts";
import { readChain } from "../format/chain.ts";
import { type DataKey, keyIdOf, sameBytes } from "../crypto/data_key.ts";
import { keyFileBytes } from "../crypto/key_file.ts";
import { UnlockError, unwrapKey, WRAPPED_KEY_NAME, wrapsOf } from "../crypto/wrapped_key.ts";
import { readWrappedKey } from "../crypto/wrapped_key_file.ts";
import { gatherSecrets, type Prompt, secretGiven, terminalPrompt } from "./secrets.ts";
import { S3BackupReader, type Unlock } from "../backends/s3/reader.ts";
import { fetchWrappedKey } from "../backends/s3/key_object.ts";
import { loadCredentials } from "../backends/s3/credentials.ts";

/** Where a backup's key is opened for: a copy's URL, the node restored into. */
export interface UnlockFor {
  /** What the operator named, when the directory is a copy of it (a server's backup, fetched). */
  url?: string;
  /** The backup.key of the node restored into: a backup sealed with another key is refused. */
  nodeKey?: string;
}

/**
 * The data key of the file backup in `dir`: `undefined` for a plain backup; else opened with
 * the secrets given, or one line saying why not.
 */
export async function unlockDir(
  dir: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt = terminalPrompt,
  { url, nodeKey }: UnlockFor = {},
): Promise<DataKey | undefined> {
  const chain = readChain(dir);
  if (chain.keyId === undefined) return undefined;
  const where = url === undefined ? `${dir}/${WRAPPED_KEY_NAME}` : `${url} ${WRAPPED_KEY_NAME}`;
  const wrapped = readWrappedKey(dir, `"${where}"`);
  const place = { where, backupId: chain.backupId, bytes: wrapped, keyId: chain.keyId };
  return await unwrapWith(url ?? dir, place, values, prompt, nodeKey);
}

/**
 * Opens a wrapped key with the secrets given, or asked for; first refuses one of another key
 * than `nodeKey`'s, so the operator is not asked for a secret to no end.
 */
async function unwrapWith(
  what: string,
  wrapped: { bytes: Uint8Array; where: string; backupId: Uint8Array; keyId: Uint8Array },
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt,
  nodeKey: string | undefined,
): Promise<DataKey> {
  // The id a key opened must match (unwrapKey checks), so it can be compared before.
  if (nodeKey !== undefined) refuseOtherKey(what, nodeKey, wrapped.keyId);
  const { passphrase: forPassphrase, recipients } = wrapsOf(wrapped.bytes);
  const ageOnly = !forPassphrase && recipients.length > 0;
  const giveIdentity = `give the identity of ${
    recipients.join(" or ")
  } (--identity FILE, CLN_BACKUP_IDENTITY)`;
  // A key wrapped for age recipients only: a passphrase asked for could only fail.
  const secrets = await gatherSecrets(values, ageOnly ? () => Promise.resolve(undefined) : prompt);
  if (secrets.length === 0) {
    throw new UnlockError(
      ageOnly
        ? `"${what}" is encrypted for an age recipient, not a passphrase: ${giveIdentity}`
        : `"${what}" is encrypted: give its passphrase (CLN_BACKUP_PASSPHRASE, ` +
          `--passphrase-file FILE, or run on a terminal) or its age identity (--identity FILE, ` +
          `CLN_BACKUP_IDENTITY)`,
    );
  }
  // Only secrets of a kind its key is not wrapped for: say which kind opens it.
  if (
    (forPassphrase || recipients.length > 0) &&
    !secrets.some((s) => "passphrase" in s ? forPassphrase : recipients.length > 0)
  ) {
    throw new UnlockError(
      ageOnly
        ? `the key of "${what}" is wrapped for an age recipient only, which no passphrase ` +
          `opens: ${giveIdentity}`
        : `the key of "${what}" is wrapped for a passphrase only, which no identity opens: ` +
          `give the passphrase (CLN_BACKUP_PASSPHRASE, --passphrase-file FILE, or run on a ` +
          `terminal)`,
    );
  }
  const { bytes, where, backupId, keyId } = wrapped;
  return await unwrapKey(bytes, where, backupId, keyId, secrets);
}

/** How an S3 reader opens an encrypted backup's key: with the secrets given, or asked for. */
export function s3Unlock(
  url: string,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt = terminalPrompt,
  nodeKey?: string,
): Unlock {
  return (wrapped, backupId) =>
    unwrapWith(
      url,
      { ...wrapped, where: `${url}/${WRAPPED_KEY_NAME}`, backupId },
      values,
      prompt,
      nodeKey,
    );
}

/**
 * The data key of the S3 backup at `url`: `undefined` for a plain backup; else opened with
 * the secrets given, or one line saying why not.
 */
export async function unlockS3(
  url: string,
  values: Record<string, string | boolean | undefined>,
): Promise<DataKey | undefined> {
  const { backupId, wrapped } = await fetchWrappedKey(url, loadCredentials(undefined));
  return wrapped && await s3Unlock(url, values)(wrapped, backupId);
}

/**
 * Gives a file backup's reader its key, when the backup is encrypted; a server's backup is
 * copied here first (wire v2), and its copy is opened the same way. Returns that key (an S3
 * reader opens its own as it is fetched). `nodeKey`, the backup.key of the node restored
 * into, says its backup is encrypted: a plain one is refused then.
 */
export async function unlockReader(
  reader: BackupReader,
  values: Record<string, string | boolean | undefined>,
  prompt: Prompt = terminalPrompt,
  nodeKey?: string,
): Promise<DataKey | undefined> {
  const copied = reader instanceof CopiedBackupReader;
  const local = copied ? reader.local : reader;
  if (local instanceof FileBackupReader) {
    const url = copied ? reader.url : undefined;
    local.key = await unlockDir(local.dir, values, prompt, { url, nodeKey });
  }
  // The id of the key that opened it (an S3 reader opened its own): none for a plain backup.
  const keyId = local instanceof FileBackupReader
    ? local.key?.id
    : local instanceof S3BackupReader
    ? local.wrapped?.keyId
    : undefined;
  // Whoever can write the storage (a server's operator) could put a plain backup in place of
  // an encrypted one: nothing authenticates its records, so it is not taken for one.
  if (keyId === undefined && secretGiven(values)) throw plainWithSecret(reader.url);
  if (nodeKey !== undefined) {
    if (keyId === undefined) throw plainForEncryptedNode(reader.url, nodeKey);
    // Refused before any prompt where the key was opened for `nodeKey`; this holds either way.
    refuseOtherKey(reader.url, nodeKey, keyId);
  }
  return local instanceof FileBackupReader ? local.key : undefined;
}

/**
 * Refuses an encrypted backup sealed with another key than the node's `backup.key`: an age
 * recipient is public, so whoever can write the storage can put a backup of their own there
 * that the operator's identity opens; the node's key tells its own backup.
 */
function refuseOtherKey(url: string, nodeKey: string, keyId: Uint8Array): void {
  let held: Uint8Array | undefined;
  try {
    // Checked before it is read, as the plugin does: a FIFO would hang the restore.
    if (Deno.lstatSync(nodeKey).isFile) held = keyFileBytes(Deno.readTextFileSync(nodeKey));
  } catch {
    // Unreadable: no key to match.
  }
  if (held && sameBytes(keyIdOf(held), keyId)) return;
  if (!held) {
    throw new UnlockError(
      `"${nodeKey}" in the node restored into cannot be read as a key file (not a regular ` +
        `file, not readable by this user, or not cln-backup's): it tells the node's own ` +
        `backup from another; fix it, or restore into another directory`,
    );
  }
  throw new UnlockError(
    `"${url}" is sealed with another key than the node restored into ("${nodeKey}" holds ` +
      `another): whoever can write the storage could have put a backup of their own there ` +
      `(an age recipient is public); restore the node's own backup, or, if this one is meant, ` +
      `into another directory`,
  );
}

/**
 * A plain backup for a node whose backup is encrypted: one from before `upgrade --encrypt`,
 * kept by whoever can write the storage, would restore an old state without a prompt.
 */
export function plainForEncryptedNode(url: string, nodeKey: string): UnlockError {
  return new UnlockError(
    `"${url}" is not encrypted, but the node restored into has an encrypted backup ` +
      `("${nodeKey}" holds its key): whoever can write the storage could have put a plain ` +
      `one there (a copy from before "upgrade --encrypt" holds an old state); restore from ` +
      `the node's encrypted backup, or, if this plain one is meant, into another directory`,
  );
}

/** A plain backup where the secret given says an encrypted one belongs. */
function plainWithSecret(url: string): UnlockError {
  return new UnlockError(
    `"${url}" is not encrypted, but a passphrase or age identity was given for it: nothing ` +
      `shows that a plain backup's records are the node's (whoever can write its storage can ` +
      `replace it); if it is meant to be plain, run without CLN_BACKUP_PASSPHRASE, ` +
      `CLN_BACKUP_IDENTITY, --passphrase-file and --identity`,
  );
}
