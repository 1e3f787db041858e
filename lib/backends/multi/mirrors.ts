/**
 * Several destinations in `backup.lock`: `backend_url` stays the first (so the Python plugin's
 * single-URL form is unchanged, and the Python plugin reading a lock with more still finds
 * one), and `mirror_urls` lists the other synchronous ones; `mirror_failure` says what a failed
 * one does: `"stop"` the node (the default), or `"degrade"` to the others. `async_urls` lists
 * the asynchronous destinations, which copy from `backend_url` off the hook's path
 * (async_copy.ts).
 *
 * @module
 */
import type { LockFile } from "../../backup/lock_file.ts";
import { parseBackupUrl } from "../url.ts";
import type { Backend } from "../backend.ts";
import type { MirrorFailure } from "./backend.ts";
import { cliCommand } from "../../fs/advised_command.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { existsSync } from "../../fs/exists.ts";
import { CREDENTIAL_NAME } from "../socket/credential_name.ts";

function urlList(lock: LockFile, key: "mirror_urls" | "async_urls"): string[] {
  const urls = lock[key];
  if (urls === undefined) return [];
  if (!Array.isArray(urls) || !urls.every((u) => typeof u === "string" && u !== "")) {
    throw new Error(
      `Cannot start backup: "${key}" in backup.lock must be a list of backup URLs, not ` +
        `${JSON.stringify(urls)}: fix or remove it`,
    );
  }
  return urls as string[];
}

/** Every destination `lock` names: the synchronous ones (`backend_url` first), the async ones. */
export function lockDestinations(lock: LockFile): { sync: string[]; async: string[] } {
  const sync = [lock.backend_url, ...urlList(lock, "mirror_urls")];
  const async = urlList(lock, "async_urls");
  const urls = [...sync, ...async];
  for (const url of urls) parseBackupUrl(url);
  const twice = urls.find((url, i) => urls.indexOf(url) !== i);
  if (twice !== undefined) {
    throw new Error(`Cannot start backup: backup.lock names "${twice}" twice: remove one`);
  }
  return { sync, async };
}

/**
 * `backup_ids` of backup.lock: each copy's backup id (hex), keyed by its URL as
 * `mirror_urls` or `async_urls` spell it, recorded by the command that made the copy. The
 * plugin refuses to write a copy's changes into another backup found at its URL; a copy
 * without one (made before they were recorded; a Python server's, which has none) is not
 * checked.
 */
export function copyBackupIds(lock: LockFile): ReadonlyMap<string, string> {
  const ids = lock.backup_ids;
  if (ids === undefined) return new Map();
  if (
    typeof ids !== "object" || ids === null || Array.isArray(ids) ||
    !Object.values(ids).every((id) => typeof id === "string" && /^[0-9a-f]{32}$/.test(id))
  ) {
    throw new Error(
      `Cannot start backup: "backup_ids" in backup.lock must map each copy's URL to its ` +
        `backup id (32 hex digits), not ${JSON.stringify(ids)}: fix it, or remove it (its ` +
        `copies are then not checked)`,
    );
  }
  return new Map(Object.entries(ids as Record<string, string>));
}

/**
 * The copies `lock` in `dir` names without a backup id in `backup_ids`, which could reach
 * another backup unnoticed; a copy on a server without the node's backup.credential speaks
 * wire v1, whose backup has none.
 */
export function untiedCopies(lock: LockFile, dir: string): string[] {
  const { sync, async } = lockDestinations(lock);
  const ids = copyBackupIds(lock);
  const untied = [...sync.slice(1), ...async].filter((url) => !ids.has(url));
  return untied.some((url) => parseBackupUrl(url).scheme === "socket") && !hasCredential(dir)
    ? untied.filter((url) => parseBackupUrl(url).scheme !== "socket")
    : untied;
}

/** `dir` holds backup.credential; a launcher written without one grants no look at it. */
function hasCredential(dir: string): boolean {
  try {
    return existsSync(`${dir}/${CREDENTIAL_NAME}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return false;
    throw error;
  }
}

/**
 * Whether `copy` is on a server that answers as of an empty backup (version 0, no records):
 * it holds no backup of the node there (asking its id, PLACE, would make an empty one), or an
 * empty one (a copy made before the node had a database, tied to that empty backup's id).
 */
export function emptyOnServer(copy: Backend): boolean {
  const { version, records } = copy.state();
  return parseBackupUrl(copy.url).scheme === "socket" && version === 0 && records === 0;
}

/**
 * Why `copy`, which backup.lock's `backup_ids` ties to the backup `tied` (none: not checked),
 * gets none of the node's changes; `undefined` when it holds that backup. Asked before
 * anything is written there. An empty copy on a server is asked too: a node with no database
 * yet has one, tied to it; another id there is an empty backup where the node's was. `dir`
 * is the lightning dir as a shell word, where it is known.
 */
export async function copyTieProblem(
  copy: Backend,
  tied: string | undefined,
  isAsync: boolean,
  dir = "DIR",
): Promise<string | undefined> {
  if (tied === undefined) return undefined;
  await copy.ready?.();
  const empty = emptyOnServer(copy);
  const held = await copy.backupIdHex?.();
  if (!empty || held === undefined || held === tied) return untiedCopy(tied, held, isAsync, dir);
  return `the server holds no backup of this node any more, but an empty one (backup ` +
    `${held}, version 0: asking its id makes one where there is none), where backup.lock ` +
    `ties this copy to backup ${tied} ("backup_ids"): it was removed or moved away on the ` +
    `server, unless backup.credential names another node now: put the backup back on the ` +
    `server in place of the empty one (or this node's own backup.credential beside ` +
    `backup.lock); or, that failing, with lightningd stopped, remove the URL from ` +
    `${isAsync ? "async_urls" : "mirror_urls"} and make the copy anew from the node's ` +
    `database with ${newCopyCommand(dir, isAsync, copy.url)}`;
}

/**
 * Why a copy, which holds the backup `held` (`undefined`: one without an id), is not
 * the backup `tied` that backup.lock's `backup_ids` ties to it; `undefined` when it is, or no
 * id is recorded. Said before anything is written there: it is another backup (another
 * node's, a mount swapped), which the node's changes would ruin. `dir` is the lightning dir
 * as a shell word, where it is known.
 */
export function untiedCopy(
  tied: string | undefined,
  held: string | undefined,
  isAsync: boolean,
  dir = "DIR",
): string | undefined {
  if (tied === undefined || held === tied) return undefined;
  return `it is ${held === undefined ? "a backup without an id" : `backup ${held}`}, ` +
    `not ${tied}, the one backup.lock ties to it ("backup_ids"): it holds another backup ` +
    `(another node's? a mount swapped?), which this node's changes would ruin: put the ` +
    `copy back at that URL; or, with lightningd stopped, remove it from ` +
    `${isAsync ? "async_urls" : "mirror_urls"} and add a new copy with ` +
    newCopyCommand(dir, isAsync);
}

/**
 * The command that adds a new copy in place of one that lacks changes or is gone (init refuses
 * a node that has a backup), as advice quotes it: for the lightning dir `dir`, a shell word the
 * caller quotes (`DIR` where it is not known), an async copy's with `--async`; at `url` where
 * it is known (`NEW_URL`).
 */
export function newCopyCommand(dir = "DIR", isAsync = false, url?: string): string {
  const at = url === undefined ? "NEW_URL" : shellQuote(url);
  return `"${cliCommand("mirror", `${at} --lightning-dir ${dir}${isAsync ? " --async" : ""}`)}"`;
}

/** The paths of the file backups `lock` names, `backend_url`'s first when it is one. */
export function fileDestinations(lock: LockFile): string[] {
  const { sync, async } = lockDestinations(lock);
  return [...sync, ...async].flatMap((url) => {
    const parsed = parseBackupUrl(url);
    return parsed.scheme === "file" ? [parsed.path] : [];
  });
}

export function mirrorFailure(lock: LockFile): MirrorFailure {
  const value = lock.mirror_failure ?? "stop";
  if (value !== "stop" && value !== "degrade") {
    throw new Error(
      `Cannot start backup: "mirror_failure" in backup.lock must be "stop" or "degrade", not ` +
        `${JSON.stringify(value)}: fix or remove it`,
    );
  }
  return value;
}
