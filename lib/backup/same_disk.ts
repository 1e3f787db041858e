/**
 * Whether a node's backup outlives the disk its database is on: the rule doctor's filesystem
 * check and the commands that set destinations up (init, mirror, upgrade) share.
 *
 * The destinations (`backend_url`, `mirror_urls`, `async_urls`) outlive that disk when one of
 * them lies elsewhere: a remote one (`socket:`, `s3://`: another machine), or a file backup on
 * another filesystem than the database (than the nearest existing directory above it, the
 * lightning dir, when it has none yet). Which one does not matter: an async copy lives on too,
 * if perhaps behind (README, "The risk"). When every destination is a file on the database's
 * filesystem, one disk failure loses the node's database and every backup of it.
 *
 * @module
 */
import { dirname } from "node:path";
import { parseBackupUrl } from "../backends/url.ts";
import { statIfExists } from "../fs/exists.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand } from "../fs/advised_command.ts";

/** The id of the filesystem (device) holding `path`: a seam, so tests can fake another disk. */
export type DeviceOf = (path: string) => number;

export const deviceOf: DeviceOf = (path) => {
  const dev = Deno.statSync(path).dev;
  if (dev === null) throw new Error(`cannot tell the filesystem of "${path}"`);
  return dev;
};

/** The nearest existing directory at or above `path` (a backup or database not made yet). */
export function placeOf(path: string): string {
  let at = path;
  while (!statIfExists(at) && dirname(at) !== at) at = dirname(at);
  return at;
}

/** How a node's destinations lie against its database's filesystem. */
export interface DiskSpread {
  /** The node's database (perhaps not made yet). */
  database: string;
  /** The database, or the nearest existing directory above it when it has none yet. */
  near: string;
  /** The paths of the file destinations on `near`'s filesystem, in the order given. */
  sameDisk: string[];
  /** The destinations elsewhere, as given: remote, or a file on another filesystem. */
  elsewhere: string[];
}

/**
 * Where the destinations `urls` lie against the database at `database`; throws when a
 * filesystem cannot be told. A set of remote destinations asks none.
 */
export function diskSpread(urls: string[], database: string, device: DeviceOf): DiskSpread {
  const near = statIfExists(database) ? database : placeOf(database);
  let nearDevice: number | undefined;
  const sameDisk: string[] = [];
  const elsewhere: string[] = [];
  for (const url of urls) {
    const parsed = parseBackupUrl(url);
    if (parsed.scheme === "file") {
      nearDevice ??= device(near);
      if (device(placeOf(parsed.path)) === nearDevice) {
        sameDisk.push(parsed.path);
        continue;
      }
    }
    elsewhere.push(url);
  }
  return { database, near, sameDisk, elsewhere };
}

/** Every destination is a file on the database's filesystem: one disk failure loses all. */
export function diesWithDisk(spread: DiskSpread): boolean {
  return spread.sameDisk.length > 0 && spread.elsewhere.length === 0;
}

/**
 * What a set that {@linkcode diesWithDisk} risks, and what to do, for the node in `dir`: one
 * clause, which doctor shows as a WARN and the commands as a warning. An `encrypted` backup
 * gets no copy from mirror (refused), so it is told to make a new one elsewhere.
 */
export function sameDiskWarning(spread: DiskSpread, dir: string, encrypted: boolean): string {
  const [first, ...copies] = spread.sameDisk.map((path) => `"${path}"`);
  const what = copies.length === 0
    ? `the backup ${first} is`
    : `the backup ${first} and its ${copies.length === 1 ? "copy" : "copies"} ` +
      `${copies.join(", ")} are`;
  const near = spread.near === spread.database
    ? `the node's database "${spread.near}"`
    : `"${spread.near}", where the node's database will be`;
  const lost = copies.length === 0 ? "both" : "them all";
  const risk = `${what} on the same filesystem as ${near}: one disk failure loses ${lost}`;
  if (encrypted) {
    return `${risk}: put the backup on another disk or a remote one (socket+tls:, s3://): ` +
      `with lightningd stopped, move backup.lock and backup.key aside and run "${
        cliCommand("init", `--lightning-dir ${shellQuote(dir)} <url> --encrypt`)
      }" (mirror makes no copy of an encrypted backup yet)`;
  }
  return `${risk}: put the backup on another disk, or add a copy on another disk or a remote ` +
    `one (socket:, s3://) with "${
      cliCommand("mirror", `<url> --lightning-dir ${shellQuote(dir)}`)
    }"`;
}
