/**
 * `server <storage-url> <addr:port>`: serves a backup to `socket:` clients, as the Python
 * `backup-cli server` does, with the same arguments and options.
 *
 * @module
 */
import { BackupServer } from "../server/server.ts";
import type { LogLevel } from "../server/session.ts";
import { ServerStorage } from "../server/storage.ts";
import { parseBackupUrl } from "../backends/url.ts";
import {
  type CommandSpec,
  consoleOutput,
  Exit,
  type Output,
  runCommand,
  UsageError,
} from "./args.ts";

const ACTION = "Cannot serve backup";

export const SERVER_HELP =
  `Usage: cln-backup server <storage-url> <addr:port> [--log-mode plain|systemd]
                         [--log-level debug|info|warning|error]

Serves the backup at <storage-url> (file:///abs/path: a cln-backup directory, created empty
when nothing is there) to plugins and commands that use a socket:<host>:<port> URL, on
<addr:port> (for example 127.0.0.1:8700, 0.0.0.0:8700 or [::]:8700). It speaks the Python
plugin's wire protocol v1, so the Python plugin and "backup-cli" work with it too.

It acknowledges a change only once it is on stable storage, answers NACK to a change it
cannot store (the node then stops), and serves any number of connections at once: one
writer per backup (a second is refused), and any number of restore, status and verify.
A v1 .dbak is refused: convert it with "upgrade" first. SIGTERM stops it cleanly.
COMPACT is not available yet: the connection that asks is closed, as a v1 server does when
compaction fails.

Options:
  --log-mode MODE    plain (default), or systemd: each line starts with its syslog level
  --log-level LEVEL  debug, info (default), warning or error
  -h, --help         show this help

The wire protocol has no encryption or authentication: listen on loopback or a private
network, and reach it through SSH, WireGuard or a Tor onion service.`;

const SPEC: CommandSpec = {
  name: "server",
  help: SERVER_HELP,
  options: { "log-mode": { type: "string" }, "log-level": { type: "string" } },
  positionals: ["storage-url", "addr:port"],
};

const LEVELS: LogLevel[] = ["debug", "info", "warning", "error"];
/** syslog priorities, which journald reads from a line's `<N>` prefix. */
const SYSLOG: Record<LogLevel, number> = { debug: 7, info: 6, warning: 4, error: 3 };

function listenAddress(text: string): { hostname: string; port: number } {
  const parsed = parseBackupUrl(`socket:${text}`);
  if (parsed.scheme !== "socket" || parsed.proxy) {
    throw new UsageError(`"${text}" is not addr:port (for example 127.0.0.1:8700)`);
  }
  return { hostname: parsed.host, port: parsed.port };
}

/** Runs until SIGTERM or SIGINT; `started` is told the server once it listens (for tests). */
export async function server(
  args: string[],
  output: Output = consoleOutput,
  started?: (server: BackupServer) => void,
): Promise<number> {
  return await runCommand(SPEC, args, output, async ({ values, positionals }) => {
    const [url, addr] = positionals;
    const mode = String(values["log-mode"] ?? "plain").toLowerCase();
    const level = String(values["log-level"] ?? "info").toLowerCase() as LogLevel;
    if (mode !== "plain" && mode !== "systemd") {
      throw new UsageError(`--log-mode is plain or systemd, not "${mode}"`);
    }
    if (!LEVELS.includes(level)) {
      throw new UsageError(`--log-level is one of ${LEVELS.join(", ")}, not "${level}"`);
    }
    let target: { hostname: string; port: number };
    try {
      target = listenAddress(addr);
    } catch (error) {
      throw new UsageError(
        (error as Error).message.replace(/^Cannot use backup URL "[^"]*": /, ""),
      );
    }
    const log = (at: LogLevel, message: string) => {
      if (LEVELS.indexOf(at) < LEVELS.indexOf(level)) return;
      output.out(mode === "systemd" ? `<${SYSLOG[at]}>${message}` : `${at}: ${message}`);
    };
    const parsed = parseBackupUrl(url);
    if (parsed.scheme !== "file") {
      throw new Error(
        `${ACTION}: the storage "${url}" must be a directory on this machine: use a ` +
          `file:///abs/path URL`,
      );
    }
    const storage = ServerStorage.open(url, parsed.path, (m) => log("info", m));
    let backupServer: BackupServer;
    try {
      backupServer = new BackupServer(storage, { ...target, log });
    } catch (error) {
      storage.close();
      throw new Error(`${ACTION}: cannot listen on ${addr}: ${(error as Error).message}`);
    }
    const stopped = Promise.withResolvers<void>();
    const stop = (signal: Deno.Signal) => {
      log("info", `${signal}: stopping`);
      backupServer.close().then(stopped.resolve, stopped.reject);
    };
    const onTerm = () => stop("SIGTERM");
    const onInt = () => stop("SIGINT");
    Deno.addSignalListener("SIGTERM", onTerm);
    Deno.addSignalListener("SIGINT", onInt);
    started?.(backupServer);
    try {
      await stopped.promise;
    } finally {
      Deno.removeSignalListener("SIGTERM", onTerm);
      Deno.removeSignalListener("SIGINT", onInt);
    }
    return Exit.Ok;
  });
}
