/**
 * The operator CLI: `deno run cli.ts <command> [options]`, or `deno task <command>`.
 *
 * @module
 */
import { runCli } from "./lib/cli/main.ts";

Deno.exit(await runCli(Deno.args));
