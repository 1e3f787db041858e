/**
 * The command line of `server <url> <addr:port> [--log-mode MODE] [--log-level LEVEL]`, as
 * the Python `backup-cli server` takes it (its systemd units keep working), parsed and
 * checked apart from the server itself so that the permission table (permissions.ts) reads
 * the same arguments the command does.
 *
 * @module
 */
import { type EnvReader, userPath } from "../fs/user_path.ts";
import { pathToFileURL } from "node:url";
import type { CommandSpec, ParsedArgs } from "./args.ts";
import { UsageError } from "./args.ts";
import { metricsHostProblem } from "../server/metrics.ts";

/** `plain` lines, or `systemd`: each line prefixed with its syslog priority, `<6>` for info. */
const LOG_MODES = ["plain", "systemd"] as const;
export type LogMode = typeof LOG_MODES[number];

/** The Python server's levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

const SERVER_HELP =
  `Usage: cln-backup server <url> <addr:port> [--allow-v1 [--v1-node NAME]] [options]
       cln-backup server init-tls <root>
       cln-backup server add-node <root> <name>
       cln-backup server list-nodes <root>
       cln-backup server remove-node <root> <name>

Serves backups to backup plugins and commands whose URL is socket:<addr>:<port>.
<addr:port> is the address to listen on: 127.0.0.1:8700, [::1]:8700, or 0.0.0.0:8700 for
every interface.

With <url> a server root (file:///abs/path holding nodes made by "add-node"), it serves
each node its own backup over wire protocol v2 (docs/PROTOCOL.md): a node proves its key,
printed once by "add-node", without sending it, and reaches only its own backup. A node's
plugin finds its credential in backup.credential beside backup.lock.

On a root with a TLS certificate (made by "init-tls", which prints its fingerprint), it
serves wire v2 over TLS only: nodes use socket+tls:<addr>:<port>?fp=sha256:<hex> (or, with
a certificate a CA issued put in tls.crt and tls.key, ?ca=/path/ca.pem). A root
without one is served in the clear only with --allow-plain (for a Tor onion service, SSH
or WireGuard, which encrypt already).

With --allow-v1 it also serves the Python plugin's wire protocol v1, which has no
authentication: anyone who reaches the port can read, rewind and write one backup, <url>
itself (a cln-backup directory, created empty when nothing is there), or node NAME's with
--v1-node NAME on a server root. It logs a warning at start. The Python plugin and its
backup-cli work with it.

It acknowledges a change only once it is on stable storage, answers NACK to a change it
cannot store (the node then stops), and serves any number of connections at once: one
writer per backup (a second is refused), and any number of restore, status and verify.
COMPACT (lightning-cli backup-compact on the node) compacts the backup beside the writes.
A v1 .dbak is refused: convert it with "upgrade" first. SIGTERM stops it cleanly.

Options:
  --allow-plain      serve wire v2 without TLS on a root that has no certificate
  --allow-v1         serve wire v1 (no authentication) to one backup
  --v1-node NAME     on a server root: the node (add-node made it) whose backup v1 reaches
  --quota-bytes N    the most bytes a node's backup may hold (a write past it is refused)
  --max-connections N  connections a node may hold at once (default 4)
  --max-packet-bytes N the largest change or snapshot accepted (default 1 GiB); a change
                     inflates to 256 MiB at most (what a record holds) whatever this is
  --max-v1-connections N  wire v1 connections open at once (default 8): past it a new one
                     closes the one idle longest that is not the writer
  --metrics ADDR:PORT  serve GET /metrics (Prometheus text: each node's version, bytes,
                     last write, lag, connections) on this loopback address
  --log-mode MODE    plain (default), or systemd: each line starts with its syslog
                     priority (<7> debug ... <2> critical) for journald
  --log-level LEVEL  the least severe lines logged: debug, info (default), notice,
                     warning, error or critical
  -h, --help         show this help

Wire v1 and plain v2 do not encrypt: listen on loopback or a private network, and reach
them through SSH, WireGuard or a Tor onion service.`;

export const SERVER_SPEC: CommandSpec = {
  name: "server",
  action: "Cannot serve backup",
  help: SERVER_HELP,
  options: {
    "log-mode": { type: "string" },
    "log-level": { type: "string" },
    "allow-v1": { type: "boolean" },
    "allow-plain": { type: "boolean" },
    "v1-node": { type: "string" },
    "quota-bytes": { type: "string" },
    "max-connections": { type: "string" },
    "max-packet-bytes": { type: "string" },
    "max-v1-connections": { type: "string" },
    metrics: { type: "string" },
  },
  positionals: ["url", "addr:port"],
  otherForms: [["add-node|remove-node", "root", "name"], ["list-nodes|init-tls", "root"]],
};

/** The commands that manage a server root's nodes. */
const NODE_COMMANDS = ["add-node", "list-nodes", "remove-node", "init-tls"] as const;
export type NodeCommand = typeof NODE_COMMANDS[number];

const ROOT_ARG = `<root> is the server root: a file: URL or a path.`;

/** Each node command's own usage, how its errors start, and its help. */
const NODE_SPECS: Record<NodeCommand, { action: string; positionals: string[]; help: string }> = {
  "add-node": {
    action: "Cannot add node",
    positionals: ["root", "name"],
    help: `Usage: cln-backup server add-node <root> <name>

Adds node <name> to the server root (made when missing) and prints its credential once: put
that line, and nothing else, in backup.credential beside the node's backup.lock (mode 0600).
The node's backup will be <root>/nodes/<name>/backup. A name is 1 to 64 letters, digits, "_"
or "-". To give a node a new key, stop the node and remove it first (its backup stays): a
running node whose key is removed stops at its next write.
${ROOT_ARG}`,
  },
  "list-nodes": {
    action: "Cannot list nodes",
    positionals: ["root"],
    help: `Usage: cln-backup server list-nodes <root>

Prints each node of the server root, and where its backup is, one a line (tab-separated);
a backup kept without a key (by "remove-node") has a third field saying so, and what
"add-node" with its name would do.
${ROOT_ARG}`,
  },
  "remove-node": {
    action: "Cannot remove node",
    positionals: ["root", "name"],
    help: `Usage: cln-backup server remove-node <root> <name>

Revokes node <name>'s key: it no longer connects, and a running server closes the
connections it has open within a second (a node still running stops at its next write). Its backup stays where it is; "add-node" with the
same name gives the node a new key and that backup again.
${ROOT_ARG}`,
  },
  "init-tls": {
    action: "Cannot make the TLS certificate",
    positionals: ["root"],
    help: `Usage: cln-backup server init-tls <root>

Makes the server root's TLS certificate (tls.crt, and tls.key mode 0600) and prints its
SHA-256 fingerprint, which nodes pin: socket+tls:<host>:<port>?fp=sha256:<hex>. The server
then serves that root over TLS only. An existing certificate is kept: nodes pin it.
${ROOT_ARG}`,
  },
};

/** The spec of node command `command`, whose arguments follow its name. */
export function nodeCommandSpec(command: NodeCommand): CommandSpec {
  return { name: `server ${command}`, options: {}, ...NODE_SPECS[command] };
}

/** Whether `word`, a command line's first, names a node command. */
export function isNodeCommand(word: string | undefined): word is NodeCommand {
  return NODE_COMMANDS.includes(word as NodeCommand);
}

export interface NodeCommandArgs {
  command: NodeCommand;
  /** The server root, a file: URL or a path. */
  root: string;
  name?: string;
}

export interface ServerArgs {
  url: string;
  /** Where to listen; `hostname` without brackets. */
  listen: { hostname: string; port: number };
  logMode: LogMode;
  logLevel: LogLevel;
  allowV1: boolean;
  allowPlain: boolean;
  v1Node: string | undefined;
  quotaBytes: number | undefined;
  maxConnections: number | undefined;
  maxPacketBytes: number | undefined;
  maxV1Connections: number | undefined;
  /** Where `GET /metrics` listens (loopback), when asked. */
  metrics: { hostname: string; port: number } | undefined;
}

function count(value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--${name} takes a whole number above 0, not "${value}"`);
  }
  return n;
}

/**
 * A node command's `<root>`, a file: URL or a path, as a URL; a relative path resolves
 * against the operator's directory (under `deno task` too), as every path they type does.
 */
export function serverRootUrl(root: string, env: EnvReader = Deno.env): string {
  // A URL starts with a scheme cln-backup knows, or one before "//" (a mistyped one, refused
  // as such); any other colon is a path's ("/srv/backups:2026", "backups:2026").
  return URL_START.test(root) ? root : pathToFileURL(userPath(root, env)).href;
}

const URL_START = /^(?:(?:file|socket|socket\+tls|s3):|[A-Za-z][A-Za-z0-9+.-]*:\/\/)/i;

/** A node command's arguments, or `undefined` when `positionals` are not one. */
export function nodeCommandArgs({ positionals }: ParsedArgs): NodeCommandArgs | undefined {
  const [command, root, name] = positionals;
  if (!NODE_COMMANDS.includes(command as NodeCommand)) return undefined;
  const wanted = command === "list-nodes" || command === "init-tls" ? 2 : 3;
  if (positionals.length !== wanted) {
    throw new UsageError(
      `"server ${command}" takes <root>${wanted === 3 ? " <name>" : ""}, got ` +
        `${positionals.length - 1} argument(s)`,
    );
  }
  return { command: command as NodeCommand, root, name };
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
function listenAddress(text: string): { hostname: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw new UsageError(
      `"${text}" is not the <addr:port> to listen on (for example 127.0.0.1:8700 or [::1]:8700)`,
    );
  }
  return { hostname: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}

/** `--metrics`' `host:port`: on loopback only, checked before anything listens. */
function metricsAddress(text: string): { hostname: string; port: number } {
  const address = listenAddress(text);
  const problem = metricsHostProblem(address.hostname);
  if (problem) throw new UsageError(`--metrics: ${problem}`);
  return address;
}

/** Checks what `server` was given; a wrong argument is a {@linkcode UsageError}. */
export function serverArgs({ values, positionals }: ParsedArgs): ServerArgs {
  const [url, address] = positionals;
  if (positionals.length !== 2) {
    throw new UsageError(
      `"server" takes <url> <addr:port> or <add-node|remove-node> <root> <name> or ` +
        `<list-nodes|init-tls> <root>, got ${positionals.length} argument(s)`,
    );
  }
  const v1Node = values["v1-node"] as string | undefined;
  if (v1Node !== undefined && !values["allow-v1"]) {
    throw new UsageError("--v1-node goes with --allow-v1");
  }
  return {
    url,
    listen: listenAddress(address),
    logMode: choice(values["log-mode"], "log-mode", LOG_MODES, "plain"),
    logLevel: choice(values["log-level"], "log-level", LOG_LEVELS, "info"),
    allowV1: values["allow-v1"] === true,
    allowPlain: values["allow-plain"] === true,
    v1Node,
    quotaBytes: count(values["quota-bytes"], "quota-bytes"),
    maxConnections: count(values["max-connections"], "max-connections"),
    maxPacketBytes: count(values["max-packet-bytes"], "max-packet-bytes"),
    maxV1Connections: count(values["max-v1-connections"], "max-v1-connections"),
    metrics: values.metrics === undefined ? undefined : metricsAddress(String(values.metrics)),
  };
}
