/**
 * `verify <url>`: proves a backup restores, without touching the node.
 *
 * @module
 */
import { connectReader } from "../backends/open.ts";
import { readBesideCompaction } from "../backends/file/read_beside_compaction.ts";
import type { BackupReader } from "../backends/backend.ts";
import { describeTail } from "../backup/restore.ts";
import { verifyBackup, type VerifyReport } from "../backup/verify.ts";
import { type CommandSpec, consoleOutput, Exit, oneLine, type Output, runCommand } from "./args.ts";
import {
  type Prompt,
  SECRET_HELP,
  SECRET_OPTIONS,
  secretGiven,
  terminalPrompt,
} from "./secrets.ts";
import { s3Unlock, unlockReader } from "./unlock.ts";
import { serverVerify } from "../backends/socket/server_checks.ts";
import { v2Credential } from "../backends/socket/credential.ts";
import { makeScratchDir, removeScratchDir } from "../fs/scratch_dir.ts";
import { explainOsError } from "../fs/os_error.ts";
import { Interrupted } from "../fs/interrupt.ts";

const VERIFY_HELP = `Usage: cln-backup verify <url>

Checks the backup at <url> (a cln-backup directory, or a v1 .dbak file of the Python plugin)
end to end: reads every record, checking its checksum (v1 files have none), restores it into
a temporary directory (statement repair, SQLite's integrity check, vars.data_version equal to
the backup's last version), then deletes the restored copy. Prints "OK: ..." on stdout, or
"FAIL: <why>" on stderr and exits with 1. It restores the version it described: a backup the
plugin appends to meanwhile is verified up to there (one it compacts meanwhile is read again,
as the files it started from are gone). Bytes at the end that fail their checks
are left out, with a note saying where it stopped and why. The backup is only read, but a
restore needs room for one database in the temporary directory ($TMPDIR, else /tmp).
A socket: backup with a credential (CLN_BACKUP_CREDENTIAL) is verified by its server (wire
v2 VERIFY), with the same checks, in place: nothing is fetched, and the server restores it
beside the backup. An encrypted one the server checks as far as it can without the key
(checksums, chain, versions); it is then fetched and restored here with its secret.

Options:
  --passphrase-file FILE, --identity FILE  an encrypted backup's secret (below)
  -h, --help  show this help

${SECRET_HELP}
Verifying an encrypted backup also authenticates every record it reads.`;

export const VERIFY_SPEC: CommandSpec = {
  name: "verify",
  action: "Cannot verify backup",
  help: VERIFY_HELP,
  options: { ...SECRET_OPTIONS },
  positionals: ["url"],
  // Its scratch holds the node's whole database, decrypted for an encrypted backup.
  interrupted: "the backup is unchanged",
};

/** What `verify` prints of `report` on the backup at `url`. */
function verifyLines(url: string, report: VerifyReport): string[] {
  const { firstVersion, lastVersion, records, snapshots, restoredVersion, tail } = report;
  if (restoredVersion === undefined) {
    return [`OK: "${url}" is empty (version 0): nothing to restore yet`];
  }
  const held = snapshots.length === 0 ? "no snapshot" : `snapshots at ${snapshots.join(", ")}`;
  const lines = [
    `OK: "${url}" holds versions ${firstVersion} to ${lastVersion} in ${records} records ` +
    `(${held}); every record reads, and it restores to version ${restoredVersion} passing ` +
    `SQLite's integrity check`,
  ];
  if (tail) lines.push(describeTail(tail, lastVersion));
  return lines;
}

/** Verifies the backup `reader` reads, restoring into `temp`; what `verify` prints. */
export function checkBackup(reader: BackupReader, temp: string): string[] {
  // A file backup the plugin compacts meanwhile is read again, not called damaged.
  return verifyLines(reader.url, readBesideCompaction(reader, () => verifyBackup(reader, temp)));
}

export async function verify(
  args: string[],
  output: Output = consoleOutput,
  prompt: Prompt = terminalPrompt,
): Promise<number> {
  return await runCommand(VERIFY_SPEC, args, output, async ({ values, positionals }) => {
    const url = positionals[0];
    let temp: string | undefined;
    let reader: BackupReader | undefined;
    try {
      // A v2 server verifies the backup in place (VERIFY): none of it is fetched.
      const credential = v2Credential(url);
      if (credential) {
        const report = await serverVerify(url, credential);
        // Given a secret, a plain backup is fetched and refused here (unlockReader).
        if (!report.encrypted && !secretGiven(values)) {
          for (const line of verifyLines(url, report)) output.out(line);
          return Exit.Ok;
        }
        // The server holds no key: it checked what it can; the restore is proved here.
        output.out(
          `the server read every record of "${url}" (checksums, chain, versions ` +
            `${report.firstVersion} to ${report.lastVersion}): it is encrypted, so it is ` +
            `restored here, with its key, to prove it`,
        );
      }
      temp = makeScratchDir("verify");
      reader = await connectReader(url, undefined, s3Unlock(url, values, prompt));
      await unlockReader(reader, values, prompt);
      for (const line of checkBackup(reader, temp)) output.out(line);
      return Exit.Ok;
    } catch (error) {
      if (error instanceof Interrupted) throw error;
      const why = explainOsError(error) ?? (error as Error).message;
      output.err(`FAIL: ${oneLine("Cannot verify backup", why)}`);
      return Exit.Failed;
    } finally {
      reader?.close();
      if (temp) removeScratchDir(temp);
    }
  });
}
