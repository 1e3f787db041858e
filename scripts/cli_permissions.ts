/**
 * Prints, one a line, the Deno flags `backup-cli` runs a command with: the permissions that
 * command needs for the arguments given (lib/cli/permissions.ts), instead of `--allow-all`.
 * `backup-cli` runs this with `--allow-read`, its uid, and no write, network or subprocess access.
 *
 * @module
 */
import { commandGrants, denoFlags } from "../lib/cli/permissions.ts";

try {
  const tempDir = Deno.env.get("TMPDIR") || "/tmp";
  console.log(denoFlags(commandGrants(Deno.args, tempDir)).join("\n"));
} catch (error) {
  console.error(`Cannot run backup-cli: ${(error as Error).message.replace(/^Cannot /, "")}`);
  Deno.exit(1);
}
