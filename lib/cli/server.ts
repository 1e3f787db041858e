/**
 * `server <url> <addr:port>`: serves backups to `socket:` clients: nodes over wire v2, and
 * with `--allow-v1` one backup as the Python `backup-cli server` does, with its arguments
 * and options (server_args.ts); `server add-node|list-nodes|remove-node` manage the nodes.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { atStep } from "../fs/step_seam.ts";
import { BackupServer } from "../server/server.ts";
import { ServerStorage, v1StorageRefusal } from "../server/storage.ts";
import { backupKind } from "../backends/open.ts";
import { existsSync } from "../fs/exists.ts";
import { makeDirs, removeMadeDirs } from "../fs/made_dirs.ts";
import { removeLeftoversOf } from "../fs/work_path.ts";
import { checkNodeName, NodeRegistry } from "../server/nodes.ts";
import { serveMetrics } from "../server/metrics.ts";
import { initTlsIdentity, loadTlsIdentity } from "../server/tls_identity.ts";
import { parseBackupUrl } from "../backends/url.ts";
import { consoleOutput, Exit, type Output, type ParsedArgs, runCommand } from "./args.ts";
import {
  isNodeCommand,
  LOG_LEVELS,
  type LogLevel,
  type NodeCommand,
  type NodeCommandArgs,
  nodeCommandSpec,
  SERVER_SPEC,
  serverArgs,
  serverRootUrl,
} from "./server_args.ts";

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

/**
 * Runs until SIGTERM or SIGINT; `started` is told the server once it listens, and a `stop`
 * that ends it as SIGTERM does (for tests: a SIGTERM to the test process would also reach the
 * other commands running in it, whose interrupt watchers take it for theirs).
 */
export async function server(
  args: string[],
  output: Output = consoleOutput,
  started?: (server: BackupServer, stop: () => void) => void,
): Promise<number> {
  // A node command comes first, as its usage line shows; it serves nothing.
  const [command, ...rest] = args;
  if (isNodeCommand(command)) {
    return await runCommand(nodeCommandSpec(command), rest, output, async (parsed) => {
      const [root, name] = parsed.positionals;
      if (command === "init-tls") return await initTls(root, output);
      return manageNodes({ command, root, name }, output);
    });
  }
  return await runCommand(
    SERVER_SPEC,
    args,
    refusalsFor(args, output),
    (parsed) => serve(parsed, output, started),
  );
}

/**
 * `output`, whose refusals carry the error priority under `--log-mode systemd`, as the
 * server's log lines carry theirs: journald reads it from a line's prefix. The mode is read
 * before the arguments are parsed, so a refusal of the arguments themselves carries it too.
 */
function refusalsFor(args: string[], output: Output): Output {
  let mode;
  try {
    mode = parseArgs({
      args,
      options: SERVER_SPEC.options,
      strict: false,
      allowPositionals: true,
    }).values["log-mode"];
  } catch {
    return output;
  }
  if (mode !== "systemd") return output;
  const prefix = `<${SYSLOG.error}>`;
  return {
    ...output,
    err: (line) => output.err(line.split("\n").map((part) => prefix + part).join("\n")),
  };
}

/** Why listening failed, and what to do; `what` names the argument to change. */
function listenProblem(error: unknown, what: string): string {
  const message = (error as Error).message.replace(/ \(os error \d+\)$/, "");
  if (error instanceof Deno.errors.AddrInUse) {
    return `${message}: another program (another server?) listens there: stop it, or ` +
      `choose another port in ${what}`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `${message}: that is not an address of this machine: use one it has (see ` +
      `"ip address"), 127.0.0.1, or 0.0.0.0 for all of them, in ${what}`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `${message}: ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a port ` +
      `from 1024 up in ${what}`;
  }
  if (/lookup address/.test(message)) {
    return `${message}: the host name does not resolve: check it, or give an IP address in ` +
      what;
  }
  return `${message}: check ${what}`;
}

/** The directory a server's `<url>` or `<root>` names. */
function storagePath(url: string): string {
  const target = parseBackupUrl(url);
  if (target.scheme !== "file") {
    throw new Error(
      `the storage "${url}" must be a directory on this machine: use a ` +
        `file:///abs/path URL`,
    );
  }
  return target.path;
}

/** Makes the root's TLS certificate and key; prints the fingerprint nodes pin. */
async function initTls(root: string, output: Output): Promise<number> {
  const path = storagePath(serverRootUrl(root));
  const made = makeDirs(path, 0o700);
  let fp: string;
  try {
    fp = await initTlsIdentity(path);
  } catch (error) {
    // Left, an empty root would pass for a server's, and hide a mistyped path next time.
    removeMadeDirs(made);
    throw error;
  }
  output.out(`TLS certificate made in ${path}; nodes pin it with this fingerprint:`);
  output.out(fp);
  output.out(`as in socket+tls:HOST:PORT?fp=${fp}`);
  return Exit.Ok;
}

/** add-node prints the node's key once; list-nodes and remove-node. */
function manageNodes(
  { command, root, name }: NodeCommandArgs & { command: Exclude<NodeCommand, "init-tls"> },
  output: Output,
): number {
  const nodes = new NodeRegistry(storagePath(serverRootUrl(root)));
  if (command !== "list-nodes") {
    // A killed add-node's key work file: after its link, a second name of the key, which
    // remove-node would leave on disk.
    for (const line of removeLeftoversOf(nodes.keyPath(checkNodeName(name!)), "server add-node")) {
      output.out(line);
    }
  }
  switch (command) {
    case "add-node": {
      const key = nodes.add(checkNodeName(name!));
      const backup = nodes.backupDir(name!);
      // remove-node keeps a node's backup: the name gets it back.
      output.out(
        existsSync(backup)
          ? `node ${name} added, with the backup kept at ${backup} since its removal: for ` +
            `another node than the one removed, move that directory away before its init`
          : `node ${name} added; its backup will be ${backup}`,
      );
      output.out(
        `Put this line, and nothing else, in backup.credential beside the node's backup.lock ` +
          `(mode 0600); it is shown only now:`,
      );
      output.out(JSON.stringify({ node: name, key }));
      return Exit.Ok;
    }
    case "list-nodes": {
      // A mistyped root would list nothing, as a root without nodes does: say which it is.
      if (!NodeRegistry.isRoot(nodes.root)) {
        throw new Error(
          `"${nodes.root}" is not a server root (it has no "nodes" ` +
            `directory): check the path; "server add-node ${nodes.root} NAME" makes one`,
        );
      }
      // A kept backup is on disk too, and add-node gives it to whoever gets the name next.
      const kept = new Set(nodes.keptBackups());
      for (const node of [...nodes.list(), ...kept].sort()) {
        const keyless =
          `\tno key (removed, or never added): its backup is kept; "server add-node ` +
          `${nodes.root} ${node}" gives it back under a new key`;
        output.out(`${node}\t${nodes.backupDir(node)}${kept.has(node) ? keyless : ""}`);
      }
      return Exit.Ok;
    }
    case "remove-node": {
      const backup = nodes.remove(checkNodeName(name!));
      output.out(
        `node ${name} removed: its key no longer connects, and a running server closes the ` +
          `connections it has open within a second; ` +
          (backup ? `its backup stays at ${backup}` : "it had no backup on this server"),
      );
      return Exit.Ok;
    }
  }
}

async function serve(
  parsed: ParsedArgs,
  output: Output,
  started?: (server: BackupServer, stop: () => void) => void,
): Promise<number> {
  {
    const options = serverArgs(parsed);
    const { url, listen, logMode, logLevel } = options;
    const log = (at: LogLevel, message: string) => {
      if (LOG_LEVELS.indexOf(at) < LOG_LEVELS.indexOf(logLevel)) return;
      output.out(logMode === "systemd" ? `<${SYSLOG[at]}>${message}` : `${at}: ${message}`);
    };
    const path = storagePath(url);
    const isRoot = NodeRegistry.isRoot(path);
    const nodes = isRoot ? new NodeRegistry(path) : undefined;
    // The Python server's storage, before the advice for a cln-backup directory.
    if (!isRoot && backupKind(path) === "v1") throw v1StorageRefusal(path);
    if (!isRoot && !options.allowV1) {
      throw new Error(
        `${ACTION}: "${path}" is not a server root, and one backup is served only over wire ` +
          `v1, which has no authentication: add --allow-v1 to serve it so, or make a root in ` +
          `another directory with "server add-node ROOT NAME", move this backup to ` +
          `ROOT/nodes/NAME/backup with the server stopped, and serve ROOT`,
      );
    }
    if (isRoot) {
      try {
        NodeRegistry.checkNotOneBackup(path, "root");
      } catch (error) {
        throw new Error(`${ACTION}: ${(error as Error).message}`);
      }
    }
    const tls = isRoot ? loadTlsIdentity(path) : undefined;
    if (isRoot && !tls && !options.allowPlain) {
      throw new Error(
        `${ACTION}: "${path}" has no TLS certificate, and wire v2 is served in the clear ` +
          `only with --allow-plain: make one with "server init-tls ${path}", or add ` +
          `--allow-plain behind a Tor onion service, SSH or WireGuard`,
      );
    }
    // A root this user cannot list would refuse every node: say so now. A node whose key it
    // cannot read (added by another user), or one others may read, is named now, and the
    // others are served: one node's mistake stops no other node's backups.
    for (const node of nodes?.list() ?? []) {
      try {
        nodes!.key(node);
      } catch (error) {
        log("error", `node ${node}: ${(error as Error).message}; it is refused until then`);
      }
    }
    if (isRoot && options.allowV1 && options.v1Node === undefined) {
      throw new Error(
        `${ACTION}: on a server root, --allow-v1 needs --v1-node NAME: the one node whose ` +
          `backup v1 clients reach`,
      );
    }
    if (options.v1Node !== undefined && !nodes) {
      throw new Error(
        `${ACTION}: --v1-node ${options.v1Node} names a node of a server root, and "${path}" is ` +
          `one backup: serve it with --allow-v1 alone`,
      );
    }
    // A mistyped name would serve v1 clients a new, empty backup, which no node had. A node an
    // older server served without add-node has its backup and no key.
    if (
      options.v1Node !== undefined && !nodes!.list().includes(checkNodeName(options.v1Node)) &&
      !existsSync(nodes!.backupDir(options.v1Node))
    ) {
      throw new Error(
        `${ACTION}: --v1-node ${options.v1Node} names no node of this server root: check the ` +
          `name against "server list-nodes ${path}", or add the node first with ` +
          `"server add-node ${path} ${options.v1Node}"`,
      );
    }
    const v1Dir = options.v1Node !== undefined
      ? nodes!.backupDir(options.v1Node)
      : options.allowV1
      ? path
      : undefined;
    const storage = v1Dir === undefined
      ? undefined
      : ServerStorage.open(`file://${v1Dir}`, v1Dir, (m) => log("info", m));
    // SIGTERM is handled before the port answers: one sent as soon as it does (systemd, a
    // test) stops the server rather than kill it.
    const signalled = Promise.withResolvers<Deno.Signal>();
    const onTerm = () => signalled.resolve("SIGTERM");
    const onInt = () => signalled.resolve("SIGINT");
    Deno.addSignalListener("SIGTERM", onTerm);
    Deno.addSignalListener("SIGINT", onInt);
    try {
      // Metrics first: a port of theirs in use stops the server before it serves anyone.
      let backupServer: BackupServer | undefined;
      let metrics: Deno.HttpServer | undefined;
      if (options.metrics) {
        try {
          metrics = serveMetrics(
            options.metrics.hostname,
            options.metrics.port,
            () => backupServer?.nodeStats() ?? [],
          );
        } catch (error) {
          storage?.close();
          throw new Error(
            `${ACTION}: cannot serve metrics on ${parsed.values.metrics}: ` +
              listenProblem(error, "--metrics"),
          );
        }
      }
      try {
        backupServer = new BackupServer({
          ...listen,
          log,
          v1Storage: storage,
          v1Node: options.v1Node,
          nodes,
          tls,
          maxPayloadBytes: options.maxPacketBytes,
          limits: {
            quotaBytes: options.quotaBytes,
            ...(options.maxConnections ? { connectionsPerNode: options.maxConnections } : {}),
            ...(options.maxV1Connections ? { v1Connections: options.maxV1Connections } : {}),
          },
        });
      } catch (error) {
        storage?.close();
        await metrics?.shutdown();
        throw new Error(
          `${ACTION}: cannot listen on ${parsed.positionals[1]}: ` +
            listenProblem(error, "<addr:port>"),
        );
      }
      if (metrics) log("info", `metrics at http://${parsed.values.metrics}/metrics`);
      atStep("server-listening");
      started?.(backupServer, () => signalled.resolve("SIGTERM"));
      const signal = await signalled.promise;
      log("info", `${signal}: stopping`);
      await Promise.all([backupServer.close(), metrics?.shutdown()]);
    } finally {
      Deno.removeSignalListener("SIGTERM", onTerm);
      Deno.removeSignalListener("SIGINT", onInt);
    }
    return Exit.Ok;
  }
}
