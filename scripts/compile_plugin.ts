/**
 * `deno task compile:plugin -- [--lightning-dir DIR] [--dry-run]`: builds the plugin into one
 * binary for one node, `DIR/cln-backup-plugin-bin`, with the least-privilege permissions of
 * the launcher (lib/cli/launcher.ts) built in.
 *
 * `deno compile` fixes a binary's permissions when it builds it, and the paths the plugin
 * may touch are the node's (its `backup.lock`, its backup), so the binary is built per node
 * from `DIR/backup.lock`: run `init` first, and build again whenever `backup.lock` changes.
 * lightningd then loads it with `important-plugin=DIR/cln-backup-plugin-bin` instead of the
 * launcher script, and needs no Deno installed. `deno compile` downloads Deno's runtime
 * for the binary once (network needed). `--dry-run` prints the command without running it.
 *
 * @module
 */
import { type CommandSpec, parseCommandArgs, UsageError } from "../lib/cli/args.ts";
import { readLockFile } from "../lib/backup/lock_file.ts";
import { compileArgs, COMPILED_PLUGIN_NAME, lockLaunchPlan } from "../lib/cli/launcher.ts";
import { userPath } from "../lib/fs/user_path.ts";

const HELP = `Usage: deno task compile:plugin -- [--lightning-dir DIR] [--dry-run]

Builds DIR/${COMPILED_PLUGIN_NAME}, the plugin for one node with the permissions of the
launcher init wrote built in, from DIR/backup.lock: run init first, and this again whenever
backup.lock changes. lightningd loads it with important-plugin=DIR/${COMPILED_PLUGIN_NAME},
and needs no Deno installed. deno compile downloads Deno's runtime once (network needed).

Options:
  --lightning-dir DIR  the network directory holding backup.lock; default: the current
                       directory
  --dry-run            print the deno compile command, and build nothing
  -h, --help           this help`;

const SPEC: CommandSpec = {
  name: "compile:plugin",
  help: HELP,
  options: { "lightning-dir": { type: "string" }, "dry-run": { type: "boolean" } },
  positionals: [],
};

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandArgs(SPEC, args[0] === "--" ? args.slice(1) : args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`Usage error: ${error.message}: see "deno task compile:plugin -- --help"`);
    return 2;
  }
  if (parsed === "help") {
    console.log(HELP);
    return 0;
  }
  const { values } = parsed;
  const given = values["lightning-dir"];
  const dir = userPath(typeof given === "string" ? given : ".");
  const lock = readLockFile(dir);
  const output = `${dir}/${COMPILED_PLUGIN_NAME}`;
  // Every destination backup.lock names (mirror_urls, async_urls) and its key file, as the
  // launcher init writes grants them.
  const command = compileArgs(lockLaunchPlan(dir, lock), output);
  console.log(`deno ${command.join(" ")}`);
  if (values["dry-run"]) return 0;
  const { code } = await new Deno.Command(Deno.execPath(), { args: command }).spawn().status;
  if (code !== 0) return code;
  console.log(`Built ${output}. Load it with this line in the lightningd config:`);
  console.log(`important-plugin=${output}`);
  return 0;
}

try {
  Deno.exit(await main(Deno.args));
} catch (error) {
  console.error(
    `Cannot compile the plugin: ${(error as Error).message.replace(/^Cannot start backup: /, "")}`,
  );
  Deno.exit(1);
}
