/**
 * The operator CLI: `deno run cli.ts <command> [options]`, or `deno task <command>`.
 *
 * @module
 */
import { runCli } from "./lib/cli/main.ts";
import { nameCommandsAsInvoked } from "./lib/fs/advised_command.ts";

// The commands its messages advise are named as the operator ran this one.
nameCommandsAsInvoked();
Deno.exit(await runCli(Deno.args));
