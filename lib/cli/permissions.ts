/**
 * What each CLI command may touch, so that `backup-cli` runs it with those permissions
 * instead of `--allow-all` (scripts/cli_permissions.ts prints {@linkcode denoFlags}).
 *
 * The grants come from the command line as the command itself parses it, so both read the
 * same paths. A command line that does not parse gets no permission but `INIT_CWD`: the
 * command then reports the usage error, which needs no more.
 *
 * - init: read and write the backup's parent directory (the backup is built beside its
 *   path), each `--mirror` and `--async` one's too, and DIR; read DIR's base dir,
 *   lightningd's config files and the database a `wallet=` line keeps elsewhere (its
 *   directory while there is none yet); connect to DIR's RPC socket; read /proc/PID;
 *   read the file backup an existing DIR/backup.lock names (init refuses it, naming a v1 one).
 *   With --existing: read and write the temporary directory, where the backup is restored.
 * - restore: read the backup; read and write the target and its parent.
 * - status: read the backup.
 * - verify: read the backup; read and write the temporary directory.
 * - restore, verify, upgrade, compact and mirror, which read a backup's records: read the
 *   read-ahead worker's code (lib/), loaded at run time for a large backup.
 * - upgrade: as init for DIR; read the v1 file backup.lock names; read and write the new
 *   backup's parent directory (a server's backup: its server, as below). `upgrade <v1-url>`:
 *   read that file; read and write the new backup's parent directory.
 * - doctor: read everything (it looks over a whole set-up); HOME; statfs (free space); the
 *   address of each remote destination (an S3 one's lifecycle rules are read).
 * - server: read and write its storage (created beside its path when missing), read the
 *   compaction worker's code; listen on its addr:port. Its node commands: read and write
 *   the root (init-tls: and read the certificate maker, lib/server/x509.ts).
 * - compact: read and write the backup (a server's: the temporary directory, where an
 *   encrypted one is fetched, restored and sealed as a new base); its uid, and as root read
 *   on the backup's ancestors, which it checks no other user may write to (root_only.ts).
 * - mirror: the node's lightning dir, the new destination as init's, the file backup
 *   backup.lock names (read: its version) and its file copies (read: their filesystem, for
 *   the warning of a set on the database's disk).
 * - rekey: read and write the backup (its key.json); with --key-file, write DIR/backup.key.
 *
 * The commands that may open an encrypted backup's key (init, restore, verify, compact, rekey,
 * upgrade) may also read its secret: CLN_BACKUP_PASSPHRASE and CLN_BACKUP_IDENTITY (rekey:
 * CLN_BACKUP_NEW_PASSPHRASE too), the files --passphrase-file and --identity name, and the
 * crypto module they load when the backup is encrypted (lib/crypto/primitives.ts).
 *
 * A `socket:` backup adds network access to its server (or its proxy) instead of the paths,
 * read on the CA file of a `socket+tls:…?ca=PATH` URL, `CLN_BACKUP_CREDENTIAL` and the file it
 * names, and the temporary directory a reader fetches the backup into;
 * an `s3://` one its endpoint, the `AWS_*` key variables, and the temporary directory its
 * reader fetches it into (init with DIR reads the keys' file there).
 * restore, verify and compact, which stop cleanly on Ctrl-C or SIGTERM, read their signal
 * watcher's code (lib/, lib/cli/interrupt_scope.ts).
 * `/proc/PID` is the `comm` file of the pid the base dir's pid file names, for the check
 * that no lightningd runs. Every command may read `INIT_CWD`, which `deno task` sets, and
 * `CLN_BACKUP_CLI`, which `backup-cli` sets (its messages name commands as it was run).
 *
 * @module
 */
import { userPath } from "../fs/user_path.ts";
import { existsSync } from "../fs/exists.ts";
import { INVOKED_AS_ENV } from "../fs/advised_command.ts";
import { dirname } from "node:path";
import { type CommandSpec, parseCommandArgs, type ParsedArgs, UsageError } from "./args.ts";
import { BackupUrlError, formatHostPort } from "../backends/url.ts";
import { INIT_SPEC, initTarget } from "./init.ts";
import { initCopies } from "./init_copies.ts";
import { RESTORE_SPEC } from "./restore.ts";
import { convertedPath } from "../backends/v1/converted.ts";
import { STATUS_SPEC } from "./status.ts";
import { VERIFY_SPEC } from "./verify.ts";
import { UPGRADE_SPEC, upgradeUrl } from "./upgrade.ts";
import { DOCTOR_SPEC } from "./doctor/doctor.ts";
import { X509_MODULE } from "../server/tls_identity.ts";
import { nodeCommandArgs, SERVER_SPEC, serverArgs, serverRootUrl } from "./server_args.ts";
import { COMPACT_SPEC } from "./compact.ts";
import { MIRROR_SPEC } from "./mirror.ts";
import { backupAccess, listItem, WORKER_CODE } from "./launcher.ts";
import { pidFilePath, rpcSocketPath } from "./node_dir.ts";
import { nodeDatabase } from "./node_database.ts";
import { readLightningdConfig } from "./lightningd_config.ts";
import { readLockFile } from "../backup/lock_file.ts";
import { lockDestinations } from "../backends/multi/mirrors.ts";
import { IDENTITY_ENV, NEW_PASSPHRASE_ENV, PASSPHRASE_ENV } from "./secrets.ts";
import { REKEY_SPEC } from "./rekey.ts";
import { PRIMITIVES_MODULE } from "../crypto/data_key.ts";
import { CREDENTIAL_ENV } from "../backends/s3/credentials.ts";
import { SIGV4_MODULE } from "../backends/s3/client.ts";
import { CREDENTIAL_ENV as NODE_CREDENTIAL_ENV } from "../backends/socket/credential.ts";
import { RUNTIME_FLAGS } from "./runtime_flags.ts";

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

/** The variable that names the directory `Deno.makeTempDir` uses. */
const TEMP_ENV = "TMPDIR";

/** `tempDir`: the directory `Deno.makeTempDir` uses. */
type Planner = (args: ParsedArgs, tempDir: string) => Partial<Grants>;

function none(): Grants {
  return { read: [], write: [], net: [], env: ["INIT_CWD", INVOKED_AS_ENV], sys: [] };
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

/**
 * The temporary directory (`tempDir`), where a command makes its scratch directories: read,
 * written, and {@linkcode TEMP_ENV} read, so that a scratch directory that cannot be made there
 * says which directory that is.
 */
function temporary(tempDir: string): Partial<Grants> {
  return { read: [tempDir], write: [tempDir], env: [TEMP_ENV] };
}

/**
 * An `s3://` backup: its endpoint, the CA file a URL's `ca=` names, the keys in the
 * environment, the temporary directory a reader fetches it into, and the request signer,
 * loaded on first use.
 */
function s3Backup(
  netAddress: string,
  caFile: string | undefined,
  tempDir: string,
): Partial<Grants> {
  return {
    net: [netAddress],
    env: [...CREDENTIAL_ENV, TEMP_ENV],
    read: [...(caFile ? [caFile] : []), tempDir, SIGV4_MODULE.pathname],
    write: [tempDir],
  };
}

/**
 * A `socket:` server: its address, the CA file a `socket+tls:…?ca=PATH` URL names, the node
 * credential {@linkcode NODE_CREDENTIAL_ENV} names (wire v2), and the temporary directory a
 * reader fetches the backup into.
 */
function server(netAddress: string, caFile: string | undefined, tempDir: string): Partial<Grants> {
  const credential = Deno.env.get(NODE_CREDENTIAL_ENV);
  return {
    net: [netAddress],
    read: [...(caFile ? [caFile] : []), ...(credential ? [userPath(credential)] : []), tempDir],
    write: [tempDir],
    env: [NODE_CREDENTIAL_ENV, TEMP_ENV],
  };
}

/** The backup itself: read, and written too when `write`. */
function backup(url: string, write: boolean, tempDir: string): Partial<Grants> {
  const { backupPath, netAddress, credentials, caFile } = backupAccess(url);
  if (credentials) return s3Backup(netAddress!, caFile, tempDir);
  if (netAddress !== undefined) return server(netAddress, caFile, tempDir);
  const path = backupPath!;
  return { read: [path], write: write ? [path] : [] };
}

/** A backup to be created: built beside its path, then renamed into place. */
function newBackup(url: string, tempDir: string): Partial<Grants> {
  const { backupPath, netAddress, credentials, caFile } = backupAccess(url);
  if (credentials) return s3Backup(netAddress!, caFile, tempDir);
  if (netAddress !== undefined) return server(netAddress, caFile, tempDir);
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
  (grants.read as string[]).push(...nodeDatabaseFiles(dir));
  return grants;
}

/**
 * The files lightningd's config is read from (an `include` may name one anywhere) and the
 * database a `wallet=` line keeps elsewhere (SQLite opens its journal and WAL files beside it
 * itself), or its directory while it has none yet (the same-disk warning stats it); none of
 * what cannot be read (the command says what is wrong).
 */
function nodeDatabaseFiles(dir: string): string[] {
  try {
    const config = readLightningdConfig(dir);
    const database = nodeDatabase(dir, "", config);
    if (dirname(database) === dir) return config.files;
    return [...config.files, existsSync(database) ? database : dirname(database)];
  } catch {
    return [];
  }
}

/**
 * What reading a backup's records takes beyond the backup: the read-ahead worker's code
 * (lib/), which a large backup's reader loads at run time (a file backup's, and the copy a
 * remote one is fetched into).
 */
const READS_RECORDS: Partial<Grants> = { read: [WORKER_CODE] };

/**
 * compact as root stats each directory above the backup (lib/fs/root_only.ts); Deno grants
 * a stat only with read on the path, and so on all below it: as root, read on everything.
 */
function asRoot(): Partial<Grants> {
  return Deno.uid() === 0 ? { read: "all", sys: ["uid"] } : { sys: ["uid"] };
}

/** What opening an encrypted backup's key takes: its secret, and the crypto module. */
function secrets({ values }: ParsedArgs): Partial<Grants> {
  const files = [values["passphrase-file"], values.identity, values["new-passphrase-file"]]
    .filter((file): file is string => typeof file === "string").map((file) => userPath(file));
  return {
    read: [PRIMITIVES_MODULE.pathname, ...files],
    env: [PASSPHRASE_ENV, IDENTITY_ENV, NEW_PASSPHRASE_ENV],
  };
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

/**
 * The file copies `DIR/backup.lock` names (`mirror_urls`, `async_urls`): the same-disk
 * warning stats each; none when the lists are malformed (the command says what is wrong).
 */
function lockedCopies(dir: string): string[] {
  try {
    const { sync, async } = lockDestinations(readLockFile(dir));
    return [...sync.slice(1), ...async].flatMap((url) => backupAccess(url).backupPath ?? []);
  } catch {
    return [];
  }
}

/**
 * The `host:port` of every remote destination `DIR/backup.lock` names, the copies too: doctor
 * reads each S3 destination's lifecycle rules. Only the backend's when the lists are malformed
 * (the copies check says what is wrong).
 */
function lockedAddresses(dir: string): string[] {
  try {
    const { sync, async } = lockDestinations(readLockFile(dir));
    return [...new Set([...sync, ...async].flatMap((url) => backupAccess(url).netAddress ?? []))];
  } catch {
    const { netAddress } = lockedBackup(dir);
    return netAddress ? [netAddress] : [];
  }
}

const TABLE: Record<string, { spec?: CommandSpec; plan: Planner }> = {
  init: {
    spec: INIT_SPEC,
    plan: ({ values, positionals }, tempDir) => {
      const dir = values["lightning-dir"];
      const target = initTarget(positionals, dir === undefined ? undefined : String(dir));
      const { mirrors, asyncs } = initCopies(values);
      const parts = [target.url, ...mirrors, ...asyncs].map((url) => newBackup(url, tempDir));
      if (target.dir !== undefined) {
        const dir = userPath(target.dir);
        parts.push(nodeDir(dir));
        // A backup.lock there already: init tells a Python plugin's v1 file by its header.
        const { backupPath } = lockedBackup(dir);
        if (backupPath !== undefined) parts.push({ read: [backupPath] });
      }
      if (values.encrypt || values.existing) parts.push(secrets({ values, positionals }));
      // --existing restores the backup into the temporary directory to compare it.
      if (values.existing) parts.push(READS_RECORDS, temporary(tempDir));
      return merge(...parts);
    },
  },
  restore: {
    spec: RESTORE_SPEC,
    plan: (args, tempDir) => {
      // A directory target gets lightningd.sqlite3 inside; a file one its temporary beside.
      const [url, target] = args.positionals;
      const path = userPath(target);
      const also = (args.values.also as unknown as string[] | undefined) ?? [];
      const sources = [url, ...also].map((u) => backup(u, false, tempDir));
      // A v1 file's converted backup beside it, which a restore of it alone compares it with.
      const { backupPath } = backupAccess(url);
      if (backupPath !== undefined && also.length === 0) {
        sources.push({ read: [convertedPath(backupPath)] });
      }
      return merge(...sources, secrets(args), READS_RECORDS, {
        read: [path, dirname(path)],
        write: [path, dirname(path)],
      });
    },
  },
  status: {
    spec: STATUS_SPEC,
    plan: ({ positionals: [url] }, tempDir) => backup(url, false, tempDir),
  },
  verify: {
    spec: VERIFY_SPEC,
    plan: (args, tempDir) =>
      merge(
        backup(args.positionals[0], false, tempDir),
        secrets(args),
        READS_RECORDS,
        temporary(tempDir),
      ),
  },
  upgrade: {
    spec: UPGRADE_SPEC,
    plan: (args, tempDir) => {
      if (args.positionals.length === 1) {
        // A v1 file alone (a backup server's): read it, build the new backup beside its path.
        const [url] = args.positionals;
        const { backupPath } = backupAccess(url);
        if (backupPath === undefined) return none();
        return merge(
          { read: [backupPath] },
          newBackup(upgradeUrl(backupPath, args.values.to), tempDir),
          READS_RECORDS,
        );
      }
      const dir = optionDir(args);
      const locked = lockedBackup(dir);
      const keys = args.values.encrypt ? [secrets(args)] : [];
      if (locked.credentials) {
        // An S3 backup: read, and copied (encrypted) to the prefix --to names.
        const to = args.values.to;
        const copy = typeof to === "string" ? [newBackup(to, tempDir)] : [];
        return merge(
          nodeDir(dir),
          s3Backup(locked.netAddress!, locked.caFile, tempDir),
          ...copy,
          ...keys,
          READS_RECORDS,
        );
      }
      if (locked.netAddress !== undefined) {
        // A server's backup, encrypted in place: fetched and sealed in DIR/cln-backup-scratch.
        return merge(
          nodeDir(dir),
          server(locked.netAddress, locked.caFile, tempDir),
          ...keys,
          READS_RECORDS,
        );
      }
      const { backupPath } = locked;
      if (backupPath === undefined) return nodeDir(dir);
      const converted = newBackup(
        upgradeUrl(backupPath, args.values.to, args.values.encrypt),
        tempDir,
      );
      return merge(nodeDir(dir), { read: [backupPath] }, converted, ...keys, READS_RECORDS);
    },
  },
  doctor: {
    spec: DOCTOR_SPEC,
    plan: (args) => ({
      read: "all",
      env: ["HOME"],
      sys: ["statfs"],
      net: lockedAddresses(optionDir(args)),
    }),
  },
  server: {
    spec: SERVER_SPEC,
    plan: (args, tempDir) => {
      const nodeCommand = nodeCommandArgs(args);
      if (nodeCommand) {
        const root = newBackup(serverRootUrl(nodeCommand.root), tempDir);
        // init-tls loads the certificate maker at run time.
        return nodeCommand.command === "init-tls"
          ? merge(root, { read: [X509_MODULE.pathname] })
          : root;
      }
      const { url, listen, metrics } = serverArgs(args);
      // A storage that is not there yet is created empty, beside its path; COMPACT runs
      // the compaction worker, whose code is read at run time.
      return merge(newBackup(url, tempDir), {
        read: [WORKER_CODE],
        net: [listen, ...(metrics ? [metrics] : [])].map((a) => formatHostPort(a.hostname, a.port)),
      });
    },
  },
  compact: {
    spec: COMPACT_SPEC,
    plan: (args, tempDir) =>
      merge(backup(args.positionals[0], true, tempDir), secrets(args), READS_RECORDS, asRoot()),
  },
  mirror: {
    spec: MIRROR_SPEC,
    plan: (args, tempDir) => {
      const dir = optionDir(args);
      const existing = lockedBackup(dir).backupPath;
      return merge(
        nodeDir(dir),
        newBackup(args.positionals[0], tempDir),
        { read: [...existing === undefined ? [] : [existing], ...lockedCopies(dir)] },
        READS_RECORDS,
      );
    },
  },
  rekey: {
    spec: REKEY_SPEC,
    plan: (args, tempDir) => {
      const keyFile = args.values["key-file"];
      const dir = typeof keyFile === "string" ? [userPath(keyFile)] : [];
      return merge(backup(args.positionals[0], true, tempDir), secrets(args), {
        read: dir,
        write: dir,
      });
    },
  },
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
    if (parsed === "help") return undefined;
    // A command that stops cleanly on a signal loads its watcher's code at run time.
    const watcher = spec?.interrupted === undefined ? {} : { read: [WORKER_CODE] };
    return merge(plan(parsed, tempDir), watcher);
  } catch (error) {
    // The command says what is wrong with its command line, needing no permission for it.
    if (error instanceof UsageError || error instanceof BackupUrlError) return undefined;
    throw error;
  }
}

/**
 * Deno's flags for `grants`: runtime flags, no prompt, no config, each permission as a list.
 * A command line that does not parse (`undefined`) gets only what every command may do
 * (read `INIT_CWD`): the command resolves its paths before it finds what is wrong.
 */
export function denoFlags(grants: Grants | undefined): string[] {
  const flags = [...RUNTIME_FLAGS, "--no-prompt", "--no-config", "--no-lock"];
  grants ??= none();
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
