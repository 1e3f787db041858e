/**
 * The operator CLI's dispatch: `cln-backup <command> [options]`.
 *
 * @module
 */
import { consoleOutput, Exit, type Output } from "./args.ts";
import { cliHelp } from "../fs/advised_command.ts";
import { cannotRun, ownCode } from "../fs/own_code.ts";

export const HELP = `Usage: cln-backup <command> [options]
  run as ./backup-cli <command> [options] in the checkout (the Python plugin's CLI name; each
  command with only the permissions it needs), or deno task <command> -- [options]

A backup plugin for Core Lightning: every database change is on stable storage before
lightningd commits it. The backup is useless without the node's hsm_secret: keep a copy of
that too, offline.

Commands:
  init --lightning-dir DIR <url>        create a backup of a node, write backup.lock and the
  init DIR <url>                        plugin's launcher, print the config line to add
  init <url>                            create an empty backup, and no backup.lock
  restore <url> <file-or-dir> [--to-version N]
                                        rebuild the node's database from a backup
  status <url> [--json]                 describe a backup: versions, records, snapshots, size
  verify <url>                          check every record and that the backup restores
  upgrade [--lightning-dir DIR] [--to <url>] [--encrypt]
                                        convert the Python plugin's v1 .dbak into cln-backup's
                                        format, keeping every version; --encrypt: encrypt a
                                        plain backup, keeping every version
  doctor [--lightning-dir DIR]          check a node's backup set-up, one line per check
  compact <url> [--retain K] [--json]   fold old changes into a new snapshot (node stopped;
                                        on a running node: lightning-cli backup-compact)
  mirror <url> [--lightning-dir DIR]    add a destination: a copy of the node's database there,
                                        named in backup.lock's mirror_urls (node stopped;
                                        --async: async_urls)
  server <root> <addr:port>             serve each node its backup over socket: URLs (wire v2;
                                        --allow-v1: one backup to the Python plugin's v1);
                                        server init-tls|add-node|list-nodes|remove-node:
                                        its root's TLS certificate and nodes
  rekey <url> [--new-recipient AGE1...] rewrap an encrypted backup's key for a new passphrase
                                        or age recipient (no data re-encrypted)

<url> is file:///abs/path (a cln-backup directory, or a v1 .dbak file to read), or
socket:<host>:<port>[?proxy=socks5:<host>:<port>] or
socket+tls:<host>:<port>?fp=sha256:<hex> (or ?ca=/path/ca.pem)[&proxy=...] (a backup server),
or s3://<bucket>/<prefix>[?endpoint=...&region=...&path-style=1] (objects in S3).
"cln-backup <command> --help" explains a command.

Exit codes:
  0  done (verify: the backup is OK; doctor: no check failed)
  1  the operation failed or was refused (verify: FAIL; doctor: a check failed); stderr says
     why and what to do, in one line
  2  usage error: an unknown command or option, or a missing or extra argument
  3  internal error: a bug; the stack trace is printed, please report it
  130, 143  stopped by Ctrl-C (SIGINT) or SIGTERM; restore and compact remove what they
     were writing first and say so in one line`;

/** A command: runs with its arguments, returns the exit code. */
export type Command = (args: string[], output: Output) => Promise<number>;

/**
 * The commands this version has; a name here is a command `backup-cli` and `deno task` run.
 * Each is loaded when it runs, so that `--help` or one command does not evaluate every other's
 * code: `--help` took twice the CPU before. String literals, so that the loads need no read
 * permission (backup-cli narrows it) and `deno compile` includes them.
 */
export const COMMANDS: Record<string, () => Promise<Command>> = {
  init: async () => (await import("./init.ts")).init,
  restore: async () => (await import("./restore.ts")).restore,
  status: async () => (await import("./status.ts")).status,
  verify: async () => (await import("./verify.ts")).verify,
  upgrade: async () => (await import("./upgrade.ts")).upgrade,
  doctor: async () => (await import("./doctor/doctor.ts")).doctor,
  compact: async () => (await import("./compact.ts")).compact,
  mirror: async () => (await import("./mirror.ts")).mirror,
  server: async () => (await import("./server.ts")).server,
  rekey: async () => (await import("./rekey.ts")).rekey,
};

/** Runs the command `args` name; returns the exit code. */
export async function runCli(args: string[], output: Output = consoleOutput): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    if (name === undefined) {
      output.err("Usage error: no command given: see the commands below");
      output.err(HELP);
      return Exit.Usage;
    }
    output.out(HELP);
    return Exit.Ok;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    output.err(`Usage error: unknown command "${name}": see "${cliHelp()}"`);
    return Exit.Usage;
  }
  let command: Command;
  try {
    command = await loadCommand(name, load);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    output.err((error as Error).message);
    return Exit.Failed;
  }
  // `deno task init -- <url>` passes the "--" on; it only separates deno's options from ours.
  return await command(rest[0] === "--" ? rest.slice(1) : rest, output);
}

/**
 * The command `name`, loaded: a file missing, unreadable or changed mid-update (a name one
 * file imports that another no longer exports) is one line saying to install again.
 */
async function loadCommand(name: string, load: () => Promise<Command>): Promise<Command> {
  return await ownCode(
    load().then((command) => {
      if (typeof command !== "function") throw new Error(`its module exports no ${name} command`);
      return command;
    }),
    cannotRun(name),
  );
}
