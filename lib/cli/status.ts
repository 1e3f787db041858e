/**
 * `status <url> [--json]`: what a backup holds, without changing it.
 *
 * @module
 */
import type { BackupDescription, BackupReader } from "../backends/backend.ts";
import { connectReader } from "../backends/open.ts";
import { type CommandSpec, consoleOutput, Exit, type Output, runCommand } from "./args.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { readBesideCompaction } from "../backends/file/read_beside_compaction.ts";
import { checkWrappedKey, describeWraps, WRAPPED_KEY_NAME } from "../crypto/wrapped_key.ts";
import { readChain } from "../format/chain.ts";
import { readWrappedKey } from "../crypto/wrapped_key_file.ts";
import { parseBackupUrl } from "../backends/url.ts";

const STATUS_HELP = `Usage: cln-backup status <url> [--json]

Describes the backup at <url> (a cln-backup directory, or a v1 .dbak file of the Python
plugin) without changing it: its format, first and last version, records, snapshots, bytes
on disk, and whether it ends in bytes that fail their checks (a record torn by a crash, which
the plugin cuts when the node's version shows it was never acknowledged, or a damaged last
change, which stops the node). In a cln-backup directory it checks every
record's checksum on the way, so damage shows here; "verify" also restores the backup.
A socket: backup with a credential (CLN_BACKUP_CREDENTIAL) is described by its server (wire
v2 STATUS), without fetching it.
An encrypted backup is described without its key, from its headers and checksums: it says
so, and whom its key is wrapped for; "verify" authenticates every record with the key.

Options:
  --json      print one JSON object instead, for scripts: {url, format, snapshots,
              firstVersion, lastVersion, records, bytes, tornBytes,
              tail: {path, offset, bytes} or null}, and for an encrypted backup
              encrypted: true and wrappedFor: ["passphrase", "age recipient age1..."],
              and strays: [keys] for objects on an S3 prefix named like the
              backup's that are not (not read: remove them)
  -h, --help  show this help`;

export const STATUS_SPEC: CommandSpec = {
  name: "status",
  action: "Cannot show the backup's status",
  help: STATUS_HELP,
  options: { json: { type: "boolean" } },
  positionals: ["url"],
};

/** What status says of an encrypted backup, read without its key. */
function encryptionLine(wrappedFor: string[]): string {
  return `encrypted (XChaCha20-Poly1305), key wrapped for ${
    wrappedFor.length === 0 ? "(no key.json of this backup)" : wrappedFor.join(", ")
  }; read without the key: checksums checked, not authenticity ("verify" checks it)`;
}

function describeText(d: BackupDescription, wrappedFor: string[] = []): string[] {
  return [
    `backup:     ${d.url}`,
    `format:     ${d.format}`,
    ...(d.encrypted ? [`encryption: ${encryptionLine(wrappedFor)}`] : []),
    `versions:   ${
      d.records === 0 ? "none yet (version 0)" : `${d.firstVersion} to ${d.lastVersion}`
    }`,
    `records:    ${d.records} (changes, and snapshot parts)`,
    `snapshots:  ${d.snapshots.length === 0 ? "none" : `at version ${d.snapshots.join(", ")}`}`,
    `bytes:      ${d.bytes}`,
    ...(d.strays ?? []).map((key) =>
      `stray:      "${key}" is not the backup's, named like its objects: not read; remove it`
    ),
    `torn tail:  ${
      d.tail === undefined
        ? "none"
        : `${d.tail.bytes} bytes at offset ${d.tail.offset} of "${d.tail.path}" fail their ` +
          `checks: a record torn by a crash if the node is at version ${d.lastVersion} (the ` +
          `plugin cuts it), a damaged change if it is at ${d.lastVersion + 1} or later`
    }`,
  ];
}

/**
 * The backup's description, and whom its key is wrapped for when it is encrypted. The code of
 * a server's or S3 backup is loaded for those only: evaluating their network clients took 25
 * of the 183 ms of CPU that status of a file backup, the common case, took.
 */
async function describeAt(url: string): Promise<[BackupDescription, string[]]> {
  const scheme = parseBackupUrl(url).scheme;
  if (scheme === "socket") {
    const described = await describedByServer(url);
    if (described) return described;
  }
  const reader = await connectForStatus(url, scheme === "socket");
  try {
    // A file backup the plugin compacts meanwhile is read again, not called damaged.
    const description = readBesideCompaction(reader, () => reader.describe());
    if (!description.encrypted) return [description, []];
    if (reader instanceof FileBackupReader) return [description, wrapsOf(reader.dir)];
    const { S3BackupReader } = await import("../backends/s3/reader.ts");
    const wrapped = reader instanceof S3BackupReader ? reader.wrapped : undefined;
    return [description, wrapped ? describeWraps(wrapped.bytes) : []];
  } finally {
    reader.close();
  }
}

/**
 * A server's backup as a v2 server describes it in place (STATUS), none of it fetched;
 * `undefined` without a node credential (wire v1: the backup is fetched).
 */
async function describedByServer(url: string): Promise<[BackupDescription, string[]] | undefined> {
  const { v2Credential } = await import("../backends/socket/credential.ts");
  const credential = v2Credential(url);
  if (!credential) return undefined;
  const { serverStatus } = await import("../backends/socket/server_checks.ts");
  const { wrappedFor, ...description } = await serverStatus(url, credential);
  return [description, wrappedFor ?? []];
}

/** The backup's reader; a server's refusal of a client without a credential said as status's. */
async function connectForStatus(url: string, onServer: boolean): Promise<BackupReader> {
  if (!onServer) return await connectReader(url);
  const { NoCredentialError } = await import("../backends/socket/reader.ts");
  try {
    return await connectReader(url);
  } catch (error) {
    // Said as status's other errors are (the reader's words are restore's).
    if (!(error instanceof NoCredentialError)) throw error;
    throw new Error(error.message.replace(/^Cannot read backup: /, `${STATUS_SPEC.action}: `));
  }
}

export async function status(args: string[], output: Output = consoleOutput): Promise<number> {
  return await runCommand(STATUS_SPEC, args, output, async ({ values, positionals }) => {
    const [description, wrappedFor] = await describeAt(positionals[0]);
    if (values.json) {
      const encryption = description.encrypted ? { wrappedFor } : {};
      output.out(
        JSON.stringify({ ...description, ...encryption, tail: description.tail ?? null }),
      );
    } else for (const line of describeText(description, wrappedFor)) output.out(line);
    return Exit.Ok;
  });
}

/**
 * Whom an encrypted backup's key is wrapped for; none when key.json cannot be read or is
 * another backup's (copied in: its wraps open no key of this one).
 */
function wrapsOf(dir: string): string[] {
  try {
    const path = `${dir}/${WRAPPED_KEY_NAME}`;
    // Checked before it is read (a FIFO would hang status, a huge file fill memory).
    const bytes = readWrappedKey(dir);
    const { backupId, keyId } = readChain(dir);
    checkWrappedKey(bytes, path, backupId, keyId!);
    return describeWraps(bytes);
  } catch {
    return [];
  }
}
