/**
 * Prints, one a line, the Deno flags `backup-cli` runs a command with: the permissions that
 * command needs for the arguments given (lib/cli/permissions.ts), instead of `--allow-all`.
 * `backup-cli` runs this with `--allow-read`, its uid, and no write, network or subprocess access.
 *
 * @module
 */
import { cannotRun, ownCode } from "../lib/fs/own_code.ts";

// Loaded so that a checkout missing a file (an update cut short) is said in one line: the
// table reads every command's options, so it reaches all of their code.
const { commandGrants, denoFlags } = await ownCode(
  import("../lib/cli/permissions.ts"),
  cannotRun("backup-cli"),
).catch((error: Error) => {
  console.error(error.message);
  Deno.exit(1);
});

try {
  const tempDir = Deno.env.get("TMPDIR") || "/tmp";
  console.log(denoFlags(commandGrants(Deno.args, tempDir)).join("\n"));
} catch (error) {
  console.error(`Cannot run backup-cli: ${(error as Error).message.replace(/^Cannot /, "")}`);
  Deno.exit(1);
}
