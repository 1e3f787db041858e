/**
 * `verify <url>`: proves a backup restores, without touching the node.
 *
 * @module
 */
import { connectReader } from "../backends/open.ts";
import type { BackupReader } from "../backends/backend.ts";
import { describeTail, restoreBackup } from "../backup/restore.ts";
import { type CommandSpec, consoleOutput, Exit, oneLine, type Output, runCommand } from "./args.ts";
import { type Prompt, SECRET_HELP, SECRET_OPTIONS, terminalPrompt } from "./secrets.ts";
import { unlockReader } from "./unlock.ts";

export const VERIFY_HELP = `Usage: cln-backup verify <url>

Checks the backup at <url> (a cln-backup directory, or a v1 .dbak file of the Python plugin)
end to end: reads every record, checking its checksum (v1 files have none), restores it into
a temporary directory (statement repair, SQLite's integrity check, vars.data_version equal to
the backup's last version), then deletes the restored copy. Prints "OK: ..." on stdout, or
"FAIL: <why>" on stderr and exits with 1. It restores the version it described: a backup the
plugin appends to meanwhile is verified up to there. Bytes at the end that fail their checks
are left out, with a note saying where it stopped and why. The backup is only read, but a
restore needs room for one database in the temporary directory ($TMPDIR, else /tmp).

Options:
  --passphrase-file FILE, --identity FILE  an encrypted backup's secret (below)
  -h, --help  show this help

${SECRET_HELP}
Verifying an encrypted backup also authenticates every record it reads.`;

export const VERIFY_SPEC: CommandSpec = {
  name: "verify",
  help: VERIFY_HELP,
  options: { ...SECRET_OPTIONS },
  positionals: ["url"],
};

/** Checks the state `describe` reports: a live backup may have grown by the time it restores. */
export function checkBackup(reader: BackupReader, temp: string): string[] {
  const d = reader.describe();
  if (d.records === 0) return [`OK: "${d.url}" is empty (version 0): nothing to restore yet`];
  // A restore reads the newest snapshot and the changes after it; read the older ones too.
  for (const snapshot of d.snapshots.slice(0, -1)) {
    for (const _ of reader.entries(snapshot)) {
      // Reading checks each record.
    }
  }
  // A restore to a version that it does not reach fails, so this one ends at lastVersion.
  const result = restoreBackup(reader, temp, { toVersion: d.lastVersion });
  const snapshots = d.snapshots.length === 0
    ? "no snapshot"
    : `snapshots at ${d.snapshots.join(", ")}`;
  const lines = [
    `OK: "${d.url}" holds versions ${d.firstVersion} to ${d.lastVersion} in ${d.records} ` +
    `records (${snapshots}); every record reads, and it restores to version ` +
    `${result.version} passing SQLite's integrity check`,
  ];
  if (d.tail) lines.push(describeTail(d.tail, d.lastVersion));
  return lines;
}

export async function verify(
  args: string[],
  output: Output = consoleOutput,
  prompt: Prompt = terminalPrompt,
): Promise<number> {
  return await runCommand(VERIFY_SPEC, args, output, async ({ values, positionals }) => {
    const temp = Deno.makeTempDirSync({ prefix: "cln-backup-verify-" });
    let reader: BackupReader | undefined;
    try {
      reader = await connectReader(positionals[0]);
      await unlockReader(reader, values, prompt);
      for (const line of checkBackup(reader, temp)) output.out(line);
      return Exit.Ok;
    } catch (error) {
      output.err(`FAIL: ${oneLine("verify backup", (error as Error).message)}`);
      return Exit.Failed;
    } finally {
      reader?.close();
      Deno.removeSync(temp, { recursive: true });
    }
  });
}
