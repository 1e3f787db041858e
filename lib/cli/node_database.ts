/**
 * Where lightningd keeps a node's database: `lightningd.sqlite3` in its network directory,
 * unless a `wallet=` line of its config names another SQLite file (`sqlite3://PATH`, with
 * a replica after a `:`; a relative PATH is taken from the network directory, lightningd's
 * working directory, as the kernel resolves it: from its real path). lightningd calls the
 * db_write hook for SQLite alone, so a wallet of another kind (PostgreSQL) cannot be backed
 * up this way. A `--wallet` given on lightningd's command line is not seen, nor the file a
 * `--conf` names (lightningd then reads that file alone).
 *
 * @module
 */
import { resolve } from "node:path";
import { DATABASE_NAME } from "../backup/database_name.ts";
import { lastEntry, type LightningdConfig, readLightningdConfig } from "./lightningd_config.ts";

/**
 * What a restore of the node's `database` is told to write to: the network directory `dir`
 * for its own `lightningd.sqlite3`, else the file itself (restore refuses the directory for a
 * database a `wallet=` line keeps elsewhere).
 */
export function restoreTargetOf(dir: string, database: string): string {
  return database === `${dir}/${DATABASE_NAME}` ? dir : database;
}

/** A `wallet=` the plugin cannot back up: its changes never reach the db_write hook. */
export class UnsupportedWalletError extends Error {}

/**
 * The node's database file, from lightningd's `config` (read here unless given); throws,
 * prefixed with `action`, for a config that cannot be read and (as
 * {@linkcode UnsupportedWalletError}) for a wallet not in SQLite.
 */
export function nodeDatabase(
  dir: string,
  action: string,
  config: LightningdConfig = readConfig(dir, action),
): string {
  const wallet = lastEntry(config, "wallet");
  if (wallet?.value === undefined) return `${dir}/${DATABASE_NAME}`;
  if (/^(sqlite3:\/\/)?(:.*)?$/.test(wallet.value)) {
    throw new Error(
      `${action}: ${wallet.file} sets wallet= without a database file: give it the ` +
        `database's path (wallet=sqlite3://PATH), or remove the line`,
    );
  }
  const sqlite = /^sqlite3:\/\/([^:]+)(:.*)?$/.exec(wallet.value);
  if (sqlite === null) {
    // Not the value itself: a PostgreSQL one holds its password.
    const kind = /^([a-z0-9]+):/i.exec(wallet.value)?.[1] ?? "non-SQLite";
    throw new UnsupportedWalletError(
      `${action}: ${wallet.file} sets wallet= to a ${kind} database: lightningd hands ` +
        `plugins the changes of a SQLite database only (sqlite3://), so cln-backup cannot ` +
        `back up this node's database: back it up with its own database's tools`,
    );
  }
  // lightningd opens it from its working directory, where `..` is the real directory's
  // parent, not that of the symbolic link the network directory may be reached through.
  return resolve(realDirectory(dir), sqlite[1]);
}

/** lightningd's config for `dir`; throws, prefixed with `action`, when it cannot be read. */
function readConfig(dir: string, action: string): LightningdConfig {
  try {
    return readLightningdConfig(dir);
  } catch (error) {
    // lightningd passes over a config it may not read; one it reads but cannot follow (a
    // missing include, a loop) keeps it from starting.
    const todo = error instanceof Deno.errors.PermissionDenied
      ? "run this as the user lightningd runs as"
      : "fix it, as lightningd would not start on it either";
    throw new Error(
      `${action}: cannot read lightningd's config to find its database: ` +
        `${(error as Error).message}: ${todo}`,
    );
  }
}

function realDirectory(dir: string): string {
  try {
    return Deno.realPathSync(dir);
  } catch {
    return dir; // Not made yet: nothing to follow.
  }
}
