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
import { parseArgs } from "node:util";
import { readLockFile } from "../lib/backup/lock_file.ts";
import { compileArgs, COMPILED_PLUGIN_NAME, lockLaunchPlan } from "../lib/cli/launcher.ts";
import { userPath } from "../lib/fs/user_path.ts";

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: args[0] === "--" ? args.slice(1) : args,
    options: { "lightning-dir": { type: "string" }, "dry-run": { type: "boolean" } },
    strict: true,
  });
  const dir = userPath(values["lightning-dir"] ?? ".");
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
