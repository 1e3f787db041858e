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
on disk, and whether it ends in bytes that fail their checks (a record torn by a crash, which
the plugin cuts when the node's version shows it was never acknowledged, or a damaged last
change, which stops the node). In a cln-backup directory it checks every
record's checksum on the way, so damage shows here; "verify" also restores the backup.

Options:
  --json      print one JSON object instead, for scripts: {url, format, snapshots,
              firstVersion, lastVersion, records, bytes, tornBytes,
              tail: {path, offset, bytes} or null}
  -h, --help  show this help`;

export const STATUS_SPEC: CommandSpec = {
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
      d.tail === undefined
        ? "none"
        : `${d.tail.bytes} bytes at offset ${d.tail.offset} of "${d.tail.path}" fail their ` +
          `checks: a record torn by a crash if the node is at version ${d.lastVersion} (the ` +
          `plugin cuts it), a damaged change if it is at ${d.lastVersion + 1}`
    }`,
  ];
}

export async function status(args: string[], output: Output = consoleOutput): Promise<number> {
  return await runCommand(STATUS_SPEC, args, output, async ({ values, positionals }) => {
    const reader = await connectReader(positionals[0]);
    try {
      const description = reader.describe();
      if (values.json) {
        output.out(JSON.stringify({ ...description, tail: description.tail ?? null }));
      } else for (const line of describeText(description)) output.out(line);
    } finally {
      reader.close();
    }
    return Exit.Ok;
  });
}
