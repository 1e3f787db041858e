/**
 * `server <url> <addr:port>`: serves a backup to `socket:` clients, as the Python
 * `backup-cli server` does, with its arguments and options (server_args.ts).
 *
 * @module
 */
import { BackupServer } from "../server/server.ts";
import { ServerStorage } from "../server/storage.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { consoleOutput, Exit, type Output, runCommand } from "./args.ts";
import { LOG_LEVELS, type LogLevel, SERVER_SPEC, serverArgs } from "./server_args.ts";

const ACTION = "Cannot serve backup";

/** syslog priorities, which journald reads from a line's `<N>` prefix. */
const SYSLOG: Record<LogLevel, number> = {
  debug: 7,
  info: 6,
  notice: 5,
  warning: 4,
  error: 3,
  critical: 2,
};

/** Runs until SIGTERM or SIGINT; `started` is told the server once it listens (for tests). */
export async function server(
  args: string[],
  output: Output = consoleOutput,
  started?: (server: BackupServer) => void,
): Promise<number> {
  return await runCommand(SERVER_SPEC, args, output, async (parsed) => {
    const { url, listen, logMode, logLevel } = serverArgs(parsed);
    const log = (at: LogLevel, message: string) => {
      if (LOG_LEVELS.indexOf(at) < LOG_LEVELS.indexOf(logLevel)) return;
      output.out(logMode === "systemd" ? `<${SYSLOG[at]}>${message}` : `${at}: ${message}`);
    };
    const target = parseBackupUrl(url);
    if (target.scheme !== "file") {
      throw new Error(
        `${ACTION}: the storage "${url}" must be a directory on this machine: use a ` +
          `file:///abs/path URL`,
      );
    }
    const storage = ServerStorage.open(url, target.path, (m) => log("info", m));
    let backupServer: BackupServer;
    try {
      backupServer = new BackupServer(storage, { ...listen, log });
    } catch (error) {
      storage.close();
      throw new Error(
        `${ACTION}: cannot listen on ${parsed.positionals[1]}: ${(error as Error).message}`,
      );
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
