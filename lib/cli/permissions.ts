/**
 * What each CLI command may touch, so that `backup-cli` runs it with those permissions
 * instead of `--allow-all` (scripts/cli_permissions.ts prints {@linkcode denoFlags}).
 *
 * The grants come from the command line as the command itself parses it, so both read the
 * same paths. A command line that does not parse gets no permission at all: the command
 * then reports the usage error, which needs none.
 *
 * - init: read and write the backup's parent directory (the backup is built beside its
 *   path) and DIR; read DIR's base dir; connect to DIR's RPC socket; read /proc/PID.
 * - restore: read the backup; read and write the target and its parent.
 * - status: read the backup.
 * - verify: read the backup; read and write the temporary directory.
 * - upgrade: as init for DIR; read the v1 file backup.lock names; read and write the new
 *   backup's parent directory.
 * - doctor: read everything (it looks over a whole set-up); HOME; statfs (free space).
 * - server: read and write its storage (created beside its path when missing), read the
 *   compaction worker's code; listen on its addr:port. Its node commands: read and write
 *   the root.
 * - compact: read and write the backup.
 *
 * A `socket:` backup adds network access to its server (or its proxy) instead of the paths.
 * `/proc/PID` is the `comm` file of the pid the base dir's pid file names, for the check
 * that no lightningd runs. Every command may read `INIT_CWD`, which `deno task` sets.
 *
 * @module
 */
import { dirname } from "node:path";
import {
  type CommandSpec,
  parseCommandArgs,
  type ParsedArgs,
  UsageError,
  userPath,
} from "./args.ts";
import { BackupUrlError, formatHostPort } from "../backends/url.ts";
import { INIT_SPEC, initTarget } from "./init.ts";
import { RESTORE_SPEC } from "./restore.ts";
import { STATUS_SPEC } from "./status.ts";
import { VERIFY_SPEC } from "./verify.ts";
import { UPGRADE_SPEC, upgradeUrl } from "./upgrade.ts";
import { DOCTOR_SPEC } from "./doctor.ts";
import { nodeCommandArgs, SERVER_SPEC, serverArgs, serverRootUrl } from "./server_args.ts";
import { COMPACT_SPEC } from "./compact.ts";
import { backupAccess, listItem, WORKER_CODE } from "./launcher.ts";
import { pidFilePath, rpcSocketPath } from "./node_dir.ts";
import { readLockFile } from "../backup/lock_file.ts";

/** What a command may do beyond computing: lists of paths, hosts and names. */
export interface Grants {
  /** Paths it may read; `"all"` for every path. */
  read: string[] | "all";
  write: string[];
  /** `host:port` to connect to or listen on, and `unix:/path` sockets. */
  net: string[];
  env: string[];
  sys: string[];
}

/** `tempDir`: the directory `Deno.makeTempDir` uses. */
type Planner = (args: ParsedArgs, tempDir: string) => Partial<Grants>;

function none(): Grants {
  return { read: [], write: [], net: [], env: ["INIT_CWD"], sys: [] };
}

function merge(...parts: Partial<Grants>[]): Grants {
  const grants = none();
  for (const part of parts) {
    grants.read = grants.read === "all" || part.read === "all"
      ? "all"
      : [...grants.read, ...part.read ?? []];
    grants.write.push(...part.write ?? []);
    grants.net.push(...part.net ?? []);
    grants.env.push(...part.env ?? []);
    grants.sys.push(...part.sys ?? []);
  }
  return grants;
}

/** The backup itself: read, and written too when `write`. */
function backup(url: string, write: boolean): Partial<Grants> {
  const { backupPath, netAddress } = backupAccess(url);
  if (netAddress !== undefined) return { net: [netAddress] };
  const path = backupPath!;
  return { read: [path], write: write ? [path] : [] };
}

/** A backup to be created: built beside its path, then renamed into place. */
function newBackup(url: string): Partial<Grants> {
  const { backupPath, netAddress } = backupAccess(url);
  if (netAddress !== undefined) return { net: [netAddress] };
  const parent = dirname(backupPath!);
  return { read: [parent], write: [parent] };
}

/**
 * A node's lightning dir: its files, its base dir (the pid file, and the network
 * directories the base-dir check looks for), and the checks that no lightningd runs on it.
 */
function nodeDir(dir: string): Partial<Grants> {
  const grants: Partial<Grants> = {
    read: [dir, dirname(dir)],
    write: [dir],
    net: [`unix:${rpcSocketPath(dir)}`],
  };
  let pid: string | undefined;
  try {
    pid = Deno.readTextFileSync(pidFilePath(dir)).trim();
  } catch {
    // No lightningd has left a pid file: nothing in /proc to look at.
  }
  if (pid !== undefined && /^\d+$/.test(pid)) (grants.read as string[]).push(`/proc/${pid}/comm`);
  return grants;
}

/** The lightning dir an option names, or the current directory. */
function optionDir(args: ParsedArgs): string {
  return userPath(String(args.values["lightning-dir"] ?? "."));
}

/** What reaching the backup `DIR/backup.lock` names takes; nothing when it names none. */
function lockedBackup(dir: string): ReturnType<typeof backupAccess> {
  try {
    return backupAccess(readLockFile(dir).backend_url);
  } catch {
    return {}; // The command reports what is wrong with backup.lock.
  }
}

const TABLE: Record<string, { spec?: CommandSpec; plan: Planner }> = {
  init: {
    spec: INIT_SPEC,
    plan: ({ values, positionals }) => {
      const dir = values["lightning-dir"];
      const target = initTarget(positionals, dir === undefined ? undefined : String(dir));
      const parts = [newBackup(target.url)];
      if (target.dir !== undefined) parts.push(nodeDir(userPath(target.dir)));
      return merge(...parts);
    },
  },
  restore: {
    spec: RESTORE_SPEC,
    plan: ({ positionals: [url, target] }) => {
      // A directory target gets lightningd.sqlite3 inside; a file one its temporary beside.
      const path = userPath(target);
      return merge(backup(url, false), {
        read: [path, dirname(path)],
        write: [path, dirname(path)],
      });
    },
  },
  status: { spec: STATUS_SPEC, plan: ({ positionals: [url] }) => backup(url, false) },
  verify: {
    spec: VERIFY_SPEC,
    plan: ({ positionals: [url] }, tempDir) =>
      merge(backup(url, false), { read: [tempDir], write: [tempDir] }),
  },
  upgrade: {
    spec: UPGRADE_SPEC,
    plan: (args) => {
      const dir = optionDir(args);
      const { backupPath } = lockedBackup(dir);
      if (backupPath === undefined) return nodeDir(dir);
      const converted = newBackup(upgradeUrl(backupPath, args.values.to));
      return merge(nodeDir(dir), { read: [backupPath] }, converted);
    },
  },
  doctor: {
    spec: DOCTOR_SPEC,
    plan: (args) => {
      const { netAddress } = lockedBackup(optionDir(args));
      return { read: "all", env: ["HOME"], sys: ["statfs"], net: netAddress ? [netAddress] : [] };
    },
  },
  server: {
    spec: SERVER_SPEC,
    plan: (args) => {
      const nodeCommand = nodeCommandArgs(args);
      if (nodeCommand) return newBackup(serverRootUrl(nodeCommand.root));
      const { url, listen, metrics } = serverArgs(args);
      // A storage that is not there yet is created empty, beside its path; COMPACT runs
      // the compaction worker, whose code is read at run time.
      return merge(newBackup(url), {
        read: [WORKER_CODE],
        net: [listen, ...(metrics ? [metrics] : [])].map((a) => formatHostPort(a.hostname, a.port)),
      });
    },
  },
  compact: { spec: COMPACT_SPEC, plan: ({ positionals: [url] }) => backup(url, true) },
};

/** The commands the table knows. */
export const PLANNED_COMMANDS: readonly string[] = Object.keys(TABLE);

/**
 * What the command `args` name may touch; `undefined` when the command line does not parse
 * (or asks for help), so the command needs no permission to answer it.
 */
export function commandGrants(args: string[], tempDir: string): Grants | undefined {
  const [name, ...rest] = args;
  if (name === undefined || !Object.hasOwn(TABLE, name)) return undefined;
  const { spec, plan } = TABLE[name];
  const commandArgs = rest[0] === "--" ? rest.slice(1) : rest;
  try {
    const parsed = spec
      ? parseCommandArgs(spec, commandArgs)
      : { values: {}, positionals: commandArgs.filter((arg) => !arg.startsWith("-")) };
    return parsed === "help" ? undefined : merge(plan(parsed, tempDir));
  } catch (error) {
    // The command says what is wrong with its command line, needing no permission for it.
    if (error instanceof UsageError || error instanceof BackupUrlError) return undefined;
    throw error;
  }
}

/** Deno's flags for `grants`: no prompt, no config, each permission as a list. */
export function denoFlags(grants: Grants | undefined): string[] {
  const flags = ["--no-prompt", "--no-config", "--no-lock"];
  if (grants === undefined) return flags;
  const list = (name: string, items: string[]) => {
    const unique = [...new Set(items)].map(listItem);
    if (unique.length > 0) flags.push(`--allow-${name}=${unique.join(",")}`);
  };
  if (grants.read === "all") flags.push("--allow-read");
  else list("read", grants.read);
  list("write", grants.write);
  list("net", grants.net);
  list("env", grants.env);
  list("sys", grants.sys);
  return flags;
}
