/**
 * Several destinations in `backup.lock`: `backend_url` stays the first (so the Python plugin's
 * single-URL form is unchanged, and the Python plugin reading a lock with more still finds
 * one), and `mirror_urls` lists the others; `mirror_failure` says what a failed one does:
 * `"stop"` the node (the default), or `"degrade"` to the others.
 *
 * @module
 */
import type { LockFile } from "../../backup/lock_file.ts";
import { parseBackupUrl } from "../url.ts";
import type { MirrorFailure } from "./backend.ts";

/** Every destination `lock` names, `backend_url` first. */
export function destinationUrls(lock: LockFile): string[] {
  const mirrors = lock.mirror_urls;
  if (mirrors === undefined) return [lock.backend_url];
  if (!Array.isArray(mirrors) || !mirrors.every((u) => typeof u === "string" && u !== "")) {
    throw new Error(
      `Cannot start backup: "mirror_urls" in backup.lock must be a list of backup URLs, not ` +
        `${JSON.stringify(mirrors)}: fix or remove it`,
    );
  }
  const urls = [lock.backend_url, ...mirrors as string[]];
  for (const url of urls) parseBackupUrl(url);
  const twice = urls.find((url, i) => urls.indexOf(url) !== i);
  if (twice !== undefined) {
    throw new Error(`Cannot start backup: backup.lock names "${twice}" twice: remove one`);
  }
  return urls;
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
