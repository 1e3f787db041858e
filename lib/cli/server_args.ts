/**
 * The command line of `server <url> <addr:port> [--log-mode MODE] [--log-level LEVEL]`, as
 * the Python `backup-cli server` takes it (its systemd units keep working), parsed and
 * checked apart from the server itself so that the permission table (permissions.ts) reads
 * the same arguments the command does.
 *
 * @module
 */
import type { CommandSpec, ParsedArgs } from "./args.ts";
import { UsageError } from "./args.ts";

/** `plain` lines, or `systemd`: each line prefixed with its syslog priority, `<6>` for info. */
export const LOG_MODES = ["plain", "systemd"] as const;
export type LogMode = typeof LOG_MODES[number];

/** The Python server's levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

export const SERVER_HELP =
  `Usage: cln-backup server <url> <addr:port> [--log-mode MODE] [--log-level LEVEL]

Serves the backup at <url> (file:///abs/path: a cln-backup directory, created empty when
nothing is there) to backup plugins and commands whose URL is socket:<addr>:<port>, over the
Python plugin's wire protocol v1, so the Python plugin and its backup-cli work with it too.
<addr:port> is the address to listen on: 127.0.0.1:8700, [::1]:8700, or 0.0.0.0:8700 for
every interface.

It acknowledges a change only once it is on stable storage, answers NACK to a change it
cannot store (the node then stops), and serves any number of connections at once: one
writer per backup (a second is refused), and any number of restore, status and verify.
COMPACT (lightning-cli backup-compact on the node) compacts the backup beside the writes.
A v1 .dbak is refused: convert it with "upgrade" first. SIGTERM stops it cleanly.

Options:
  --log-mode MODE    plain (default), or systemd: each line starts with its syslog
                     priority (<7> debug ... <2> critical) for journald
  --log-level LEVEL  the least severe lines logged: debug, info (default), notice,
                     warning, error or critical
  -h, --help         show this help

The wire protocol has no encryption or authentication: listen on loopback or a private
network, and reach it through SSH, WireGuard or a Tor onion service.`;

export const SERVER_SPEC: CommandSpec = {
  name: "server",
  help: SERVER_HELP,
  options: { "log-mode": { type: "string" }, "log-level": { type: "string" } },
  positionals: ["url", "addr:port"],
};

export interface ServerArgs {
  url: string;
  /** Where to listen; `hostname` without brackets. */
  listen: { hostname: string; port: number };
  logMode: LogMode;
  logLevel: LogLevel;
}

/** One of `choices`, in any case as the Python CLI accepts them, or the option's default. */
function choice<T extends string>(
  value: string | boolean | undefined,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  const found = choices.find((c) => c === String(value).toLowerCase());
  if (found === undefined) {
    throw new UsageError(`--${name} takes ${choices.join(", ")}, not "${value}"`);
  }
  return found;
}

/** Reads `host:port` or `[v6]:port`. */
export function listenAddress(text: string): { hostname: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw new UsageError(
      `"${text}" is not the <addr:port> to listen on (for example 127.0.0.1:8700 or [::1]:8700)`,
    );
  }
  return { hostname: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}

/** Checks what `server` was given; a wrong argument is a {@linkcode UsageError}. */
export function serverArgs({ values, positionals }: ParsedArgs): ServerArgs {
  const [url, address] = positionals;
  return {
    url,
    listen: listenAddress(address),
    logMode: choice(values["log-mode"], "log-mode", LOG_MODES, "plain"),
    logLevel: choice(values["log-level"], "log-level", LOG_LEVELS, "info"),
  };
}
