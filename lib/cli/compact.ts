/**
 * `compact <url> [--retain K] [--json]`: compacts the backup of a stopped node.
 *
 * @module
 */
import { BackupLockedError, FileBackend } from "../backends/file/writer.ts";
import { backupKind, checkHoldsSegments } from "../backends/open.ts";
import {
  type CompactionPhase,
  type CompactionResult,
  compactWithWriter,
} from "../compact/compact.ts";
import { readChain } from "../format/chain.ts";
import { sharedDirectory } from "../fs/root_only.ts";
import { compactS3 } from "../backends/s3/compaction.ts";
import { loadCredentials } from "../backends/s3/credentials.ts";
import { formatHostPort, parseBackupUrl } from "../backends/url.ts";
import { DEFAULT_RETAIN_BASES } from "../compact/plan.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  fileBackupPath,
  type Output,
  runCommand,
  UsageError,
} from "./args.ts";
import { SECRET_HELP, SECRET_OPTIONS } from "./secrets.ts";
import { unlockDir, unlockS3 } from "./unlock.ts";
import type { DataKey } from "../crypto/data_key.ts";
import { v2Credential } from "../backends/socket/credential.ts";
import {
  compactOverV1,
  RemoteBackupError,
  SocketBackend,
  socketUrl,
} from "../backends/socket/backend.ts";
import { completedStats } from "../backends/socket/compaction.ts";
import { WireConnection } from "../backends/socket/connection.ts";
import { serverStatus } from "../backends/socket/server_checks.ts";
import { compactSealed } from "../backends/socket/sealed_compaction.ts";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "../backends/socket/options.ts";
import { makeScratchDir, removeScratchDir } from "../fs/scratch_dir.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { servedNodeOf } from "../server/nodes.ts";

const ACTION = "Cannot compact backup";

const COMPACT_HELP = `Usage: cln-backup compact <url> [--retain K] [--json]

Compacts the backup at <url> (a cln-backup directory, or s3://) while lightningd is stopped: the changes
up to the one before the newest are folded into a new snapshot (a base), and the bases beyond
the newest K, with the changes only they need, are deleted. The newest change stays on top of
the base, so the plugin can still drop it if the node never committed it. Every step is
crash-safe: the new base is synced before anything is deleted.

On a running node use "lightning-cli backup-compact" instead: the plugin compacts beside
its writes without stalling the node, and compacts by itself as its options say.

Options:
  --retain K  bases to keep, each with the changes after it, so "restore --to-version N"
              works from the oldest one on (default ${DEFAULT_RETAIN_BASES}, whatever the node's
              backup-retain-snapshots: give that K to keep the older bases)
  --json      print the result as one JSON object: {before: {backupsize, version_count},
              after: {...}, base_version, versions_folded, bytes_freed, seconds}
  -h, --help  show this help

It needs room for one more copy of the database beside the backup while it runs: the
database it rebuilds becomes the base part by part.
An s3:// backup keeps one base; its keys come from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY. Its objects are never changed, only added and then deleted, so a
compaction interrupted at any point leaves a backup that restores.
An encrypted backup is compacted here, where its key is opened, never on a server: a socket:
one (wire v2, with CLN_BACKUP_CREDENTIAL) is fetched, restored and sealed as a new base here,
which the server swaps in; a plain one on a server is compacted by the server (COMPACT), over
wire v1 without CLN_BACKUP_CREDENTIAL, as the Python plugin asks (its server serves one
connection at a time: stop lightningd first).
A backup on a server keeps one base, as an s3:// one does.

${SECRET_HELP}`;

export const COMPACT_SPEC: CommandSpec = {
  name: "compact",
  action: ACTION,
  help: COMPACT_HELP,
  options: { retain: { type: "string" }, json: { type: "boolean" }, ...SECRET_OPTIONS },
  positionals: ["url"],
  interrupted: "the backup is unchanged",
};

function retainArg(value: string | boolean | undefined): number {
  if (value === undefined) return DEFAULT_RETAIN_BASES;
  // Any K the plugin's backup-retain-snapshots takes, which the help says to give here.
  if (typeof value !== "string" || !/^[1-9]\d*$/.test(value) || !Number.isSafeInteger(+value)) {
    throw new UsageError(`--retain takes a number of bases (1, 2, 3, ...), not "${value}"`);
  }
  return Number(value);
}

const BAR_WIDTH = 30;

/** The terminal's progress line: the rebuild runs from the newest base up to the target. */
export function progressBar(
  phase: CompactionPhase,
  version: number,
  from: number,
  target: number,
): string {
  const fraction = phase !== "restore"
    ? 1
    : target > from
    ? Math.min(1, Math.max(0, (version - from) / (target - from)))
    : 1;
  const filled = Math.round(fraction * BAR_WIDTH);
  const what = phase === "restore"
    ? `rebuilding, version ${version} of ${target}`
    : phase === "base"
    ? `writing the base at version ${target}`
    : "deleting what it covers";
  return `compacting [${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ` +
    `${Math.floor(fraction * 100)}% ${what}`;
}

function describeCompaction(result: CompactionResult): string {
  const { before, after } = result;
  // A Python server does not say its base's version.
  const what = result.base_version !== null
    ? `${result.versions_folded} change(s) folded into a base at version ${result.base_version}`
    : result.versions_folded > 0
    ? `${result.versions_folded} change(s) folded`
    : "nothing new to fold";
  return `Compacted in ${result.seconds} s: ${what}; ${before.backupsize} -> ` +
    `${after.backupsize} bytes (${result.bytes_freed} freed), ${before.version_count} -> ` +
    `${after.version_count} versions held (changes, and each snapshot once)`;
}

/**
 * Refuses, as root, a backup another user can change names in: a symlink it put there would
 * have root write, truncate or give it the file it points to (see root_only.ts).
 */
function refuseShared(path: string): void {
  const shared = sharedDirectory(path);
  if (shared === undefined) return;
  throw new Error(
    `${ACTION}: "${shared.path}" is writable by uid ${shared.uid} (or its group), and compact ` +
      `runs as root, which would follow a symlink put there onto any file: run compact as ` +
      `that user (sudo -u "#${shared.uid}" ...)`,
  );
}

function openWriter(url: string, path: string, key: DataKey | undefined): FileBackend {
  const kind = backupKind(path);
  if (kind === "v1") {
    throw new Error(
      `${ACTION}: "${path}" is a v1 backup of the Python plugin: run "${cliCommand("upgrade")}" ` +
        `first, then compact the new backup`,
    );
  }
  if (kind !== "directory") throw new Error(`${ACTION}: nothing at "${path}": check the URL`);
  try {
    return FileBackend.open(url, path, { key });
  } catch (error) {
    if (!(error instanceof BackupLockedError)) throw error;
    const served = servedNodeOf(path);
    if (served !== undefined) {
      // A root's backups are held open by the server that serves them, not by a plugin.
      throw new Error(
        `${ACTION}: "${path}" is node ${served.name}'s backup on the server of ` +
          `"${served.root}", which holds it open: run "lightning-cli backup-compact" on that ` +
          `node, which compacts it while the node runs, or stop the server first`,
      );
    }
    throw new Error(
      `${ACTION}: a running plugin is writing to "${path}": run "lightning-cli ` +
        `backup-compact" on that node instead`,
    );
  }
}

/** Compacts an S3 backup (which keeps one base: a restore reads only the newest). */
async function compactOnS3(
  url: string,
  retain: number,
  values: Record<string, string | boolean | undefined>,
  output: Output,
): Promise<CompactionResult> {
  if (retain !== 1) {
    throw new UsageError(
      `--retain ${retain}: an S3 backup keeps one base (a restore reads only the newest): ` +
        `leave --retain out`,
    );
  }
  const result = await compactS3(url, loadCredentials(undefined), {
    key: await unlockS3(url, values),
    onProgress: output.progress &&
      ((phase, version) => output.progress!(`compacting: ${phase}, version ${version}`)),
  });
  output.progress?.("");
  return result;
}

/**
 * Has a server compact over wire v1, with no credential, as the Python plugin does: the Python
 * `backup-cli server`, or ours with `--allow-v1`.
 */
async function compactOverWireV1(url: string, policy: RetryPolicy): Promise<CompactionResult> {
  const target = socketUrl(url);
  const server = formatHostPort(target.host, target.port);
  const conn = await WireConnection.open(target, policy.timeoutMs);
  try {
    const started = performance.now();
    const stats = await compactOverV1(
      conn,
      server,
      policy.compactTimeoutMs,
      `${ACTION}: the server at ${server} does not answer: a Python backup-cli server serves ` +
        `one connection at a time, so while lightningd runs its plugin holds it: stop ` +
        `lightningd and run this again (or, with the node's credential in ` +
        `CLN_BACKUP_CREDENTIAL, cln-backup's server compacts beside the node's writes)`,
    );
    return completedStats(stats, Math.round(performance.now() - started) / 1000);
  } catch (error) {
    if (error instanceof RemoteBackupError) throw error;
    throw new Error(
      `${ACTION}: the server at ${server} gave no answer to COMPACT ` +
        `(${(error as Error).message}): see its log; the backup is as it was`,
    );
  } finally {
    conn.close();
  }
}

/**
 * Compacts a server's backup: a plain one by the server (COMPACT), an encrypted one here, up
 * to the version before its newest change (SEALED_BASE).
 */
async function compactOnServer(
  url: string,
  values: Record<string, string | boolean | undefined>,
): Promise<CompactionResult> {
  const credential = v2Credential(url);
  const policy = { ...DEFAULT_RETRY_POLICY, retries: 0 };
  if (!credential) return await compactOverWireV1(url, policy);
  const remote = await SocketBackend.connect(url, { policy, credential });
  try {
    if (!(await serverStatus(url, credential)).encrypted) {
      const stats = await remote.compactOnServer();
      return stats as unknown as CompactionResult;
    }
    const { rewindVersion, version } = remote.state();
    const scratch = makeScratchDir("compact");
    try {
      return await compactSealed({
        url,
        target: socketUrl(url),
        credential,
        key: (dir) => unlockDir(dir, values),
        version: rewindVersion ?? version,
        scratch,
        timeoutMs: policy.timeoutMs,
        compactTimeoutMs: policy.compactTimeoutMs,
        nodeStopped: true,
      });
    } finally {
      removeScratchDir(scratch);
    }
  } finally {
    remote.close();
  }
}

export async function compact(args: string[], output: Output = consoleOutput): Promise<number> {
  return await runCommand(COMPACT_SPEC, args, output, async ({ values, positionals }, scope) => {
    const url = positionals[0];
    const retain = retainArg(values.retain);
    if (parseBackupUrl(url).scheme !== "file") {
      // Its objects are only added, then deleted: it restores at every step (see the help).
      scope.leaves("the backup restores as it did");
    }
    if (parseBackupUrl(url).scheme === "socket") {
      if (retain !== 1) {
        throw new UsageError(
          `--retain ${retain}: a backup on a server keeps one base (its server deletes the ` +
            `older ones when it compacts): leave --retain out`,
        );
      }
      const result = await compactOnServer(url, values);
      output.out(values.json ? JSON.stringify(result) : describeCompaction(result));
      return Exit.Ok;
    }
    if (parseBackupUrl(url).scheme === "s3") {
      const result = await compactOnS3(url, retain, values, output);
      output.out(values.json ? JSON.stringify(result) : describeCompaction(result));
      return Exit.Ok;
    }
    const path = fileBackupPath(url, ACTION);
    const directory = backupKind(path) === "directory";
    // A directory that is no backup (a lightning dir, the one a .dbak is in) is a wrong URL,
    // not a damaged backup.
    if (directory) checkHoldsSegments(path);
    if (directory && Deno.uid() === 0) refuseShared(path);
    const key = directory ? await unlockDir(path, values) : undefined;
    const writer = openWriter(url, path, key);
    try {
      const target = writer.state().rewindVersion ?? writer.state().version;
      const from = readChain(path).bases.at(-1)?.number ?? 0;
      const result = compactWithWriter(writer, {
        target,
        retain,
        key,
        nodeStopped: true,
        onProgress: output.progress &&
          ((phase, version) => output.progress!(progressBar(phase, version, from, target))),
      });
      output.progress?.("");
      output.out(values.json ? JSON.stringify(result) : describeCompaction(result));
    } finally {
      writer.close();
    }
    return Exit.Ok;
  });
}
