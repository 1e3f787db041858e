/**
 * A permission the plugin's launcher does not grant. `init` writes the launcher's flags for the
 * backup `backup.lock` names; a backup.lock edited since (another path, server or proxy) names
 * what the plugin may not touch, and Deno's own words ("run again with the --allow-net flag")
 * would send the operator where lightningd gives them no say.
 *
 * @module
 */
import { shellQuote } from "./shell_quote.ts";
import { cliCommand } from "./advised_command.ts";

/**
 * Why the plugin failed, when its launcher denied it: what to do, from `dir`, the lightning
 * dir (where lightningd runs the plugin, its working directory unless given).
 */
export function launcherDenied(error: unknown, dir = Deno.cwd()): string | undefined {
  if (!(error instanceof Deno.errors.NotCapable)) return undefined;
  const denied = error.message.replace(/, run again with the --allow-\w+ flag$/, "");
  return `the plugin's launcher does not allow it (${denied.replace(/^R/, "r")}): backup.lock ` +
    `names a backup the launcher was not written for (changed after init?): run ` +
    `"${
      cliCommand("doctor", `--lightning-dir ${shellQuote(dir)}`)
    }", which names the flags the launcher needs`;
}
