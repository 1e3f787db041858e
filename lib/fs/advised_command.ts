/**
 * Commands this program advises, as the operator pastes them into a shell.
 *
 * A command is named the way the operator ran this program, once cli.ts has said how
 * ({@linkcode nameCommandsAsInvoked}): `deno task doctor -- …` under `deno task`,
 * `./backup-cli doctor …` under `backup-cli` (as its `$0`). Where the program cannot know
 * (the plugin, which lightningd starts; the compiled binary), it is `cln-backup doctor …`,
 * the form the help documents.
 *
 * @module
 */
import { shellQuote } from "./shell_quote.ts";
import { readableEnv } from "./readable_env.ts";

/** Set by `backup-cli` to the name it was run by (its `$0`). */
export const INVOKED_AS_ENV = "CLN_BACKUP_CLI";

/** How a command line is written: a program and the command, or `deno task`. */
type Naming = { program: string } | "deno task";

let naming: Naming = { program: "cln-backup" };

/**
 * Names commands as the operator ran this program: `backup-cli` says it in
 * {@linkcode INVOKED_AS_ENV}; `deno task` sets INIT_CWD (backup-cli unsets it). Only the
 * variables this process may read are looked at.
 */
export function nameCommandsAsInvoked(env: Pick<Deno.Env, "get"> = readableEnv): void {
  const invokedAs = env.get(INVOKED_AS_ENV);
  if (invokedAs) {
    naming = { program: /^[\w./-]+$/.test(invokedAs) ? invokedAs : shellQuote(invokedAs) };
  } else if (env.get("INIT_CWD") !== undefined) naming = "deno task";
  else naming = { program: "cln-backup" };
}

/**
 * The command line running `command` with `args` as the plugin's messages name it, for a
 * message that reaches another machine's operator (a server's refusal, in a node's log): how
 * this program was run says nothing of how they run it.
 */
export function nodeCommand(command: string, args = ""): string {
  return `cln-backup ${command}${args ? ` ${args}` : ""}`;
}

/**
 * The command line running `command` with `args` (shell words, quoted by the caller). Under
 * `deno task`, the task is its first word (`server` of `server init-tls`): the words before
 * `--` are not the command's.
 */
export function cliCommand(command: string, args = ""): string {
  if (naming === "deno task") {
    const [task, ...words] = command.split(" ");
    const rest = [...words, ...(args ? [args] : [])].join(" ");
    return `deno task ${task}${rest ? ` -- ${rest}` : ""}`;
  }
  return `${naming.program} ${command}${args ? ` ${args}` : ""}`;
}

/** The command that lists the commands: `deno task` lists the tasks, one a command. */
export function cliHelp(): string {
  return naming === "deno task" ? "deno task" : `${naming.program} --help`;
}
