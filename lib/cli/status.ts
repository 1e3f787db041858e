/**
 * `status <url> [--json]`: what a backup holds, without changing it.
 *
 * @module
 */
import type { BackupDescription } from "../backends/backend.ts";
import { connectReader } from "../backends/open.ts";
import { type CommandSpec, consoleOutput, Exit, type Output, runCommand } from "./args.ts";

export const STATUS_HELP = `Usage: cln-backup status <url> [--json]

Describes the backup at <url> (a cln-backup directory, or a v1 .dbak file of the Python
plugin) without changing it: its format, first and last version, records, snapshots, bytes
on disk, and whether a crash left a torn record at its tail (the plugin cuts it on its next
write; it was never acknowledged to lightningd). In a cln-backup directory it checks every
record's checksum on the way, so damage shows here; "verify" also restores the backup.

Options:
  --json      print one JSON object instead, for scripts: {url, format, snapshots,
              firstVersion, lastVersion, records, bytes, tornBytes}
  -h, --help  show this help`;

const SPEC: CommandSpec = {
  name: "status",
  help: STATUS_HELP,
  options: { json: { type: "boolean" } },
  positionals: ["url"],
};

export function describeText(d: BackupDescription): string[] {
  return [
    `backup:     ${d.url}`,
    `format:     ${d.format}`,
    `versions:   ${
      d.records === 0 ? "none yet (version 0)" : `${d.firstVersion} to ${d.lastVersion}`
    }`,
    `records:    ${d.records}`,
    `snapshots:  ${d.snapshots.length === 0 ? "none" : `at version ${d.snapshots.join(", ")}`}`,
    `bytes:      ${d.bytes}`,
    `torn tail:  ${
      d.tornBytes === 0
        ? "none"
        : `${d.tornBytes} bytes after the last valid record (cut on the next write)`
    }`,
  ];
}

export async function status(args: string[], output: Output = consoleOutput): Promise<number> {
  return await runCommand(SPEC, args, output, async ({ values, positionals }) => {
    const reader = await connectReader(positionals[0]);
    try {
      const description = reader.describe();
      if (values.json) output.out(JSON.stringify(description));
      else for (const line of describeText(description)) output.out(line);
    } finally {
      reader.close();
    }
    return Exit.Ok;
  });
}
