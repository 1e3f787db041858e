/**
 * Checks on the lightning dir a command is pointed at: that it is the network directory
 * lightningd runs plugins in (not the base dir above it), and that no lightningd runs on it.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { existsSync } from "../fs/exists.ts";
import { DATABASE_NAME } from "../backup/database_name.ts";
import { KEY_FILE } from "../crypto/key_file.ts";
import { cliCommand } from "../fs/advised_command.ts";

/** The network directories lightningd creates inside its base dir. */
export const NETWORKS = [
  "bitcoin",
  "testnet",
  "testnet4",
  "signet",
  "regtest",
  "liquid",
  "liquid-regtest",
] as const;

/** lightningd's default base dir (`~/.lightning`), which holds the network directories. */
export const BASE_DIR_NAME = ".lightning";

/** Whether `dir` holds a node's files (`hsm_secret`, `lightningd.sqlite3`): a network dir. */
export function holdsNode(dir: string): boolean {
  return existsSync(`${dir}/hsm_secret`) || existsSync(`${dir}/${DATABASE_NAME}`);
}

/** The network directories `dir` holds (a base dir's). */
export function networkDirs(dir: string): string[] {
  return NETWORKS.filter((n) => isDirectory(`${dir}/${n}`));
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Refuses a directory that is not the network directory: the Python plugin's most common
 * set-up mistake is `backup.lock` in the base dir (`~/.lightning`), where the plugin, which
 * runs in `~/.lightning/bitcoin`, never finds it. A directory holding `hsm_secret` or
 * `lightningd.sqlite3` is a network directory; one holding neither but network
 * subdirectories or a `config` file is the base dir. An empty directory is accepted (a node
 * that has not started yet).
 */
export function checkNetworkDir(
  dir: string,
  action: string,
  fix: (suggested: string) => string = (suggested) => `use --lightning-dir ${suggested}`,
): void {
  if (!isDirectory(dir)) {
    throw new Error(
      `${action}: "${dir}" is not a directory: pass the lightning network directory with ` +
        `--lightning-dir (for example ~/.lightning/bitcoin)`,
    );
  }
  if (holdsNode(dir)) return;
  const networks = networkDirs(dir);
  // A network dir may hold its own config (lightningd reads <base>/<network>/config too).
  const networkNamed = (NETWORKS as readonly string[]).includes(basename(dir));
  if (networks.length === 0 && (!existsSync(`${dir}/config`) || networkNamed)) return;
  const used = networks.filter((n) =>
    existsSync(`${dir}/${n}/${DATABASE_NAME}`) || existsSync(`${dir}/${n}/hsm_secret`)
  );
  const suggested = (used.length > 0 ? used : networks.length > 0 ? networks : ["bitcoin"])
    .map((n) => `"${dir}/${n}"`).join(" or ");
  const holds = networks.length > 0
    ? `the network directories ${networks.join(", ")}`
    : `a "config" file but no hsm_secret`;
  throw new Error(
    `${action}: "${dir}" looks like the base lightning directory (it holds ${holds}), not ` +
      `the network directory lightningd runs plugins in: ${fix(suggested)}`,
  );
}

/** The RPC socket a lightningd running on `dir` listens on (unless moved by `rpc-file`). */
export function rpcSocketPath(dir: string): string {
  return `${dir}/lightning-rpc`;
}

/** The pid file lightningd keeps in the base dir while it runs on the network dir `dir`. */
export function pidFilePath(dir: string): string {
  return `${dirname(dir)}/lightningd-${basename(dir)}.pid`;
}

/** Why a lightningd looks alive on `dir`, or `undefined`. */
async function runningEvidence(dir: string): Promise<string | undefined> {
  // lightningd listens on the `lightning-rpc` unix socket in its network directory while it
  // runs. A socket file left by a killed lightningd refuses connections.
  const socket = rpcSocketPath(dir);
  try {
    const connection = await Deno.connect({ transport: "unix", path: socket });
    connection.close();
    return `its RPC socket "${socket}" accepts connections`;
  } catch (error) {
    if (
      !(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.ConnectionRefused)
    ) {
      throw new Error(
        `cannot tell whether lightningd is running: connecting to "${socket}" failed ` +
          `(${(error as Error).message}): run this as the user lightningd runs as`,
      );
    }
  }
  // The socket may live elsewhere (the rpc-file option), so also read the pid file
  // lightningd keeps in the base dir while it runs, and ask /proc (Linux) what that pid is.
  const pidFile = pidFilePath(dir);
  let pid: string;
  try {
    pid = Deno.readTextFileSync(pidFile).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  if (!/^\d+$/.test(pid)) return undefined;
  try {
    const command = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
    return command === "lightningd" ? `"${pidFile}" names process ${pid}, a lightningd` : undefined;
  } catch {
    return undefined; // No such process (a stale pid file), or no /proc to ask.
  }
}

/** Refuses when a lightningd runs on `dir` (see {@linkcode runningEvidence} for how). */
export async function checkNotRunning(dir: string, action: string): Promise<void> {
  let evidence: string | undefined;
  try {
    evidence = await runningEvidence(dir);
  } catch (error) {
    throw new Error(`${action}: ${(error as Error).message}`);
  }
  if (evidence !== undefined) {
    throw new Error(
      `${action}: lightningd is running on "${dir}" (${evidence}): stop it first ` +
        `("lightning-cli stop"), then run this again`,
    );
  }
}

/**
 * Refuses a key file in `dir` to a `command` that makes a plain backup: the plugin refuses one
 * beside a plain backup, so lightningd would stop at its start. `whose` says whose it may be.
 */
export function refuseKeyFile(dir: string, action: string, command: string, whose: string): void {
  if (!existsSync(`${dir}/${KEY_FILE}`)) return;
  throw new Error(
    `${action}: "${dir}/${KEY_FILE}" holds a key, but this ${command} makes a plain backup: ` +
      `the plugin would refuse to start with it; ${command} with --encrypt, or move the key ` +
      `file aside (it may be ${whose}), then run this again`,
  );
}

/**
 * Refuses to call a set-up done whose backup.lock names the plain backup `url` (`plain()`)
 * while a key file lies beside it: the plugin refuses to start so, and lightningd with it. An
 * `upgrade --encrypt` killed before it rewrote backup.lock leaves it; `again` says how its
 * rerun goes (a file or server backup's finishes what it left; an S3 copy needs a new prefix).
 */
export function refuseKeyBesidePlain(
  dir: string,
  action: string,
  url: string,
  plain: () => boolean,
  again = "again with the secret that one was given, which finishes it",
): void {
  if (!existsSync(`${dir}/${KEY_FILE}`) || !plain()) return;
  throw new Error(
    `${action}: "${dir}/${KEY_FILE}" holds a key, but backup.lock names the plain backup ` +
      `${url}, beside which the plugin refuses to start (an interrupted "upgrade --encrypt" ` +
      `leaves it so): run "${cliCommand("upgrade", "--encrypt")}" ${again}, or move the key ` +
      `file aside if this node's backup is to stay plain`,
  );
}
