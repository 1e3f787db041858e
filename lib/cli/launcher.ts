/**
 * The launch script `init` writes for lightningd, and the permission flags it carries.
 *
 * lightningd starts a plugin by path with no arguments, so the script carries Deno's flags:
 *
 * - `--no-prompt`: a missing permission is an error, never a question on a terminal that a
 *   service does not have;
 * - `--allow-read=<lightning dir>/backup.lock,<lightning dir>/backup.key,<backup>`: the plugin
 *   reads `backup.lock` in its working directory, the key of an encrypted backup beside it
 *   (absent for a plain one: the plugin checks that none is there), then the backup;
 * - `--allow-write=<backup>`: appends, rewinds, the write lock (`LOCK`) and the temporary
 *   files made when a segment rolls all live inside the backup's directory;
 * - `--allow-net=<host:port>` for a `socket:` backup only: the backup server, or the SOCKS
 *   proxy when the URL names one (the proxy reaches the server, the plugin does not), and
 *   read on `backup.credential` beside `backup.lock`, the node's key for wire v2, and on the
 *   PEM file of CA certificates a `socket+tls:…?ca=PATH` URL names; for an
 *   `s3://` backup, the endpoint's, and `--allow-read` of `backup-s3.credentials` beside
 *   backup.lock, where it reads its keys;
 * - `--allow-read` of `backup.key` beside backup.lock: an encrypted backup's data key (the
 *   plugin also reads it to refuse a key beside a destination that cannot use it);
 * - when a destination is in S3, read and write on `cln-backup-scratch` in the lightning dir,
 *   where its compaction rebuilds the database and the new base, and read on this `lib/`,
 *   the code of its worker; the same for a remote primary with async copies, which catch up
 *   by fetching it there;
 * - `--allow-sys=setPriority` when a destination is a file or S3 backup, which the plugin
 *   compacts: the compaction worker lowers its own thread's CPU priority, so that the hooks'
 *   thread runs first (lib/compact/worker.ts);
 * - several destinations (backup.lock's `mirror_urls` and `async_urls`): each one's grants
 *   above, together: read and write on each file backup, the `host:port` of each remote
 *   one, each CA file, and the credential file of each kind named;
 * - nothing else: no run, no FFI, no environment, no other system information.
 *
 * Nothing more is strictly needed, which the permission test checks: `Deno.cwd()`,
 * `performance.now()` (Deno 2 has no `hrtime` permission any more) and `node:zlib` need no
 * permission. One subtlety: `Deno.cwd()` returns the real path of the lightning dir (the
 * kernel resolves symlinks), and Deno matches permissions against the path as written, so
 * the lock file is granted under its real path; a lightning dir reached through a symlink
 * (say `~/.lightning` on a data disk) would otherwise be denied its own `backup.lock`. The
 * backup is granted under the path in its URL, which is the path the plugin opens.
 *
 * `--no-config` and `--no-lock` keep a `deno.json` or lock file near the plugin from
 * changing what runs. Deno is named by absolute path, so the launch does not depend on a
 * service manager's PATH; `DENO_NO_UPDATE_CHECK=1` keeps Deno itself from looking for a
 * new release from the node's service. Before the permissions come the runtime flags of
 * lib/cli/runtime_flags.ts, which keep the plugin's memory flat.
 *
 * @module
 */
import { CREDENTIAL_NAME } from "../backends/socket/credential.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { writeFileDurably } from "../fs/durable.ts";
import { LOCK_FILE, type LockFile } from "../backup/lock_file.ts";
import { lockDestinations } from "../backends/multi/mirrors.ts";
import { KEY_FILE } from "../crypto/key_file.ts";
import { existsSync } from "../fs/exists.ts";
import { formatHostPort, parseBackupUrl } from "../backends/url.ts";
import { s3HostPort } from "../backends/s3/s3_url.ts";
import { CREDENTIALS_FILE } from "../backends/s3/credentials.ts";
import { SIGV4_MODULE } from "../backends/s3/client.ts";
import { SCRATCH_DIR } from "../backends/plugin_scratch.ts";
import { RUNTIME_FLAGS } from "./runtime_flags.ts";

export const LAUNCHER_NAME = "cln-backup-plugin";
/** What `deno task compile:plugin` builds in the lightning dir (see scripts/compile_plugin.ts). */
export const COMPILED_PLUGIN_NAME = "cln-backup-plugin-bin";
export const PLUGIN_ENTRY = new URL("../../plugin.ts", import.meta.url).pathname;

export interface LaunchPlan {
  /** Absolute path of the deno binary. */
  deno: string;
  /** Absolute path of plugin.ts. */
  plugin: string;
  lightningDir: string;
  /** Each `file:` destination's directory: read and written. */
  backupPaths: string[];
  /**
   * Each `host:port` the plugin may connect to: a `socket:` destination's server, or the
   * SOCKS proxy when its URL names one; an `s3://` destination's endpoint.
   */
  netAddresses: string[];
  /** An `s3://` destination: the plugin reads its keys from backup-s3.credentials. */
  credentials: boolean;
  /** A `socket:` destination: the plugin reads its node key (wire v2) from backup.credential. */
  nodeCredential: boolean;
  /** The CA certificates each `socket+tls:…?ca=PATH` destination's server must chain to. */
  caFiles: string[];
  /** The kinds of destination the plugin compacts itself (a server compacts its own). */
  compacts: ("file" | "s3")[];
  /**
   * The plugin works in `cln-backup-scratch` in the lightning dir: an S3 destination's
   * compaction, async copies catching up from a remote primary, which is fetched there, or an
   * encrypted server backup's compaction, which only the node can make.
   */
  scratch: boolean;
}

/** What reaching one destination takes. */
export interface BackupAccess {
  /** A `file:` backup's directory. */
  backupPath?: string;
  /**
   * The `host:port` to connect to: a `socket:` backup's server, or the SOCKS proxy when the
   * URL names one; an `s3://` backup's endpoint.
   */
  netAddress?: string;
  /** An `s3://` backup: its keys in backup-s3.credentials. */
  credentials?: boolean;
  /** A `socket:` backup: its node key (wire v2) in backup.credential. */
  nodeCredential?: boolean;
  /** A `socket+tls:…?ca=PATH` backup: the CA certificates the server's must chain to. */
  caFile?: string;
}

/**
 * The launch plan for the destinations of a backup.lock, `backendUrl` first, then its
 * `mirror_urls` and `async_urls`: what the plugin may read, write and connect to, for each.
 */
export function launchPlan(options: {
  lightningDir: string;
  backendUrl: string;
  mirrorUrls?: readonly string[];
  asyncUrls?: readonly string[];
  /** An encrypted backup (backup.key beside backup.lock). */
  encrypted?: boolean;
  deno?: string;
  plugin?: string;
}): LaunchPlan {
  const deno = options.deno ?? Deno.execPath();
  // A compiled cln-backup runs as its own binary, with plugin.ts inside it: no launcher can
  // start that plugin with deno.
  if (!/(^|\/)deno(\.exe)?$/.test(deno)) {
    throw new Error(
      `Cannot write the plugin launcher: this cln-backup runs as "${deno}", not deno: run ` +
        `init from a checkout ("deno task init"), or build the plugin for this node with ` +
        `"deno task compile:plugin"`,
    );
  }
  const asyncs = options.asyncUrls ?? [];
  const others = [...options.mirrorUrls ?? [], ...asyncs];
  const access = [options.backendUrl, ...others].map(backupAccess);
  const unique = (
    items: (string | undefined)[],
  ) => [...new Set(items.filter((item): item is string => item !== undefined))];
  const primary = access[0];
  return {
    deno,
    plugin: options.plugin ?? PLUGIN_ENTRY,
    lightningDir: options.lightningDir,
    backupPaths: unique(access.map((a) => a.backupPath)),
    netAddresses: unique(access.map((a) => a.netAddress)),
    credentials: access.some((a) => a.credentials),
    nodeCredential: access.some((a) => a.nodeCredential),
    caFiles: unique(access.map((a) => a.caFile)),
    // A remote primary's async copies catch up from a fetch of it into the scratch directory.
    scratch: access.some((a) => a.credentials) ||
      (primary.netAddress !== undefined && asyncs.length > 0) ||
      (options.encrypted === true && primary.nodeCredential === true),
    compacts: [
      ...(access.some((a) => a.backupPath !== undefined) ? ["file" as const] : []),
      ...(access.some((a) => a.credentials) ? ["s3" as const] : []),
    ],
  };
}

/** The launch plan for `<lightningDir>/backup.lock`'s `lock`: every destination it names. */
export function lockLaunchPlan(
  lightningDir: string,
  lock: LockFile,
  options: { deno?: string; plugin?: string } = {},
): LaunchPlan {
  const { sync, async } = lockDestinations(lock);
  return launchPlan({
    lightningDir,
    backendUrl: lock.backend_url,
    mirrorUrls: sync.slice(1),
    asyncUrls: async,
    encrypted: existsSync(`${lightningDir}/${KEY_FILE}`),
    ...options,
  });
}

/**
 * Refuses, before anything is made, a set-up whose launcher cannot be written: a path Deno's
 * flags cannot name, or a compiled cln-backup. Found only once the backup is made, an S3 or
 * server backup would be left behind.
 */
export function checkLaunchable(lightningDir: string, lock: LockFile): void {
  launchArgs(lockLaunchPlan(lightningDir, lock));
}

/**
 * What reaching the backup at `url` takes: its path for a `file:` backup; for a `socket:`
 * backup, the one `host:port` to connect to (the server, or the SOCKS proxy when the URL
 * names one: the proxy reaches the server, the plugin does not); for an `s3://` backup, the
 * endpoint's `host:port` and its keys' file beside backup.lock.
 */
export function backupAccess(url: string): BackupAccess {
  const parsed = parseBackupUrl(url);
  if (parsed.scheme === "file") return { backupPath: parsed.path };
  if (parsed.scheme === "s3") {
    const { host, port } = s3HostPort(parsed);
    return {
      netAddress: formatHostPort(host, port),
      credentials: true,
      ...(parsed.ca === undefined ? {} : { caFile: parsed.ca }),
    };
  }
  const target = parsed.proxy ?? parsed;
  return {
    netAddress: formatHostPort(target.host, target.port),
    nodeCredential: true,
    ...(parsed.tls?.ca === undefined ? {} : { caFile: parsed.tls.ca }),
  };
}

/** The path with symlinks resolved, or as given when it does not exist (yet). */
function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return path;
    throw error;
  }
}

/**
 * Deno's permission lists are comma separated, with no escape; and backup-cli passes its
 * flags one a line.
 */
export function listItem(path: string): string {
  if (/[,\n]/.test(path)) {
    throw new Error(
      `Cannot grant access to "${path}": Deno's permission flags cannot name a path with a ` +
        `comma or a newline: choose a path without one`,
    );
  }
  return path;
}

/**
 * The code a file backup's compaction worker loads (lib/compact/worker.ts and what it
 * imports, all in this lib/), and the crypto primitives an encrypted backup loads
 * (lib/crypto/primitives.ts): modules loaded at run time need read access to them.
 */
export const WORKER_CODE = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The permission flags of the least-privilege launch (shared by `deno run` and `deno compile`). */
function permissionFlags(plan: LaunchPlan): string[] {
  const dir = realPath(plan.lightningDir).replace(/\/+$/, "");
  // An s3:// backup's compaction rebuilds the database in a scratch directory of its own;
  // async copies fetch a remote primary there (its code: a read-ahead worker for large logs).
  const scratch = plan.scratch ? [`${dir}/${SCRATCH_DIR}`] : [];
  const write = [...plan.backupPaths, ...scratch].map(listItem);
  const files = plan.backupPaths.length > 0;
  const read = new Set([
    `${dir}/${LOCK_FILE}`,
    `${dir}/${KEY_FILE}`,
    // A socket: backup's node credential (wire v2), when there is one: that file only.
    ...(plan.nodeCredential ? [`${dir}/${CREDENTIAL_NAME}`] : []),
    ...plan.caFiles,
    ...plan.backupPaths,
    ...(files ? [WORKER_CODE] : []),
    // An S3 destination's keys, and the code of its request signer, loaded on first use.
    ...(plan.credentials ? [`${dir}/${CREDENTIALS_FILE}`, WORKER_CODE] : []),
    ...(plan.scratch ? [WORKER_CODE, ...scratch] : []),
  ].map(listItem));
  const list = (items: string[]) => items.map(listItem).join(",");
  return [
    "--no-prompt",
    "--no-config",
    "--no-lock",
    `--allow-read=${[...read].join(",")}`,
    ...(write.length > 0 ? [`--allow-write=${write.join(",")}`] : []),
    ...(plan.compacts.length > 0 ? ["--allow-sys=setPriority"] : []),
    ...(plan.netAddresses.length > 0 ? [`--allow-net=${list(plan.netAddresses)}`] : []),
  ];
}

/** The `deno run` arguments of the least-privilege launch. */
export function launchArgs(plan: LaunchPlan): string[] {
  return ["run", ...RUNTIME_FLAGS, ...permissionFlags(plan), plan.plugin];
}

/** The `deno compile` arguments that build the plugin for one node with the same permissions. */
export function compileArgs(plan: LaunchPlan, output: string): string[] {
  // The workers and the crypto primitives are loaded at run time, so the binary must carry
  // them: compaction's worker, the read-ahead worker a reader of a large backup starts (an
  // async copy catching up from the primary, an S3 or server compaction restoring its fetch;
  // a file compaction reads on its own thread), the primitives, and an S3 destination's signer.
  // An encrypted server backup's compaction restores a fetch and seals the new base.
  const sealedOnServer = plan.scratch && plan.nodeCredential;
  const modules = new Set([
    ...(plan.backupPaths.length > 0 ? ["compact/worker.ts", "crypto/primitives.ts"] : []),
    ...(plan.compacts.includes("s3") ? ["backends/s3/compaction_worker.ts"] : []),
    ...(plan.credentials || sealedOnServer ? ["crypto/primitives.ts"] : []),
    ...(sealedOnServer ? ["backends/socket/sealed_compaction_worker.ts"] : []),
    ...(plan.compacts.length > 0 || sealedOnServer ? ["backends/file/read_ahead_worker.ts"] : []),
  ]);
  const include = [...modules].flatMap((module) => ["--include", `${WORKER_CODE}/${module}`]);
  const signer = plan.credentials ? ["--include", SIGV4_MODULE.pathname] : [];
  return [
    "compile",
    ...RUNTIME_FLAGS,
    ...permissionFlags(plan),
    ...include,
    ...signer,
    "--output",
    output,
    plan.plugin,
  ];
}

/** "a", "a and b", "a, b and c". */
function listed(items: string[]): string {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

/**
 * What the launcher lets the plugin do, in words, as permissionFlags grants it: what it may
 * read, write and connect to, one phrase each.
 */
export function grantedInWords(plan: LaunchPlan): string[] {
  const writes = [
    ...(plan.backupPaths.length > 0 ? ["the file backups"] : []),
    ...(plan.scratch ? [SCRATCH_DIR] : []),
  ];
  const reads = [
    LOCK_FILE,
    KEY_FILE,
    ...(plan.nodeCredential ? [CREDENTIAL_NAME] : []),
    ...(plan.credentials ? [CREDENTIALS_FILE] : []),
    ...(plan.caFiles.length > 0 ? ["the CA file" + (plan.caFiles.length > 1 ? "s" : "")] : []),
    ...writes,
    // Its workers' code, loaded at run time.
    ...(plan.backupPaths.length > 0 || plan.credentials || plan.scratch ? ["its own code"] : []),
  ];
  return [
    `read only ${listed(reads)},`,
    writes.length > 0 ? `write only ${listed(writes)},` : "write nothing,",
    plan.netAddresses.length > 0
      ? `and connect only to ${listed(plan.netAddresses)}`
      : "and connect nowhere",
  ];
}

export function launcherScript(plan: LaunchPlan): string {
  return [
    "#!/bin/sh",
    "# Written by `cln-backup init`. lightningd runs this as the backup plugin: Deno lets the",
    ...grantedInWords(plan).map((words, i, all) =>
      `# ${i === 0 ? "plugin " : ""}${words}${i === all.length - 1 ? "." : ""}`
    ),
    "export DENO_NO_UPDATE_CHECK=1",
    `exec ${[plan.deno, ...launchArgs(plan)].map(shellQuote).join(" ")}`,
    "",
  ].join("\n");
}

/** Writes the launcher into the lightning dir; returns its path. */
export function writeLauncher(plan: LaunchPlan): string {
  writeFileDurably(
    plan.lightningDir,
    LAUNCHER_NAME,
    new TextEncoder().encode(launcherScript(plan)),
  );
  const path = `${plan.lightningDir}/${LAUNCHER_NAME}`;
  Deno.chmodSync(path, 0o755);
  return path;
}

/** What a launcher script runs, read back from it (for `doctor`); `undefined` if unreadable. */
export function parseLauncher(text: string): { deno: string; args: string[] } | undefined {
  const line = text.split("\n").find((l) => l.startsWith("exec "));
  if (!line) return undefined;
  const words: string[] = [];
  const word = /'((?:[^']|'\\'')*)'/y;
  let at = "exec ".length;
  while (at < line.length) {
    if (line[at] === " ") {
      at++;
      continue;
    }
    word.lastIndex = at;
    const match = word.exec(line);
    if (!match) return undefined;
    words.push(match[1].replaceAll(`'\\''`, "'"));
    at = word.lastIndex;
  }
  if (words.length < 2) return undefined;
  return { deno: words[0], args: words.slice(1) };
}
