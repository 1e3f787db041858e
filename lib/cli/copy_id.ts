/**
 * The backup id of a destination, which `mirror` and `init` record in backup.lock's
 * `backup_ids` when they make a copy: the plugin then refuses to write the node's changes into
 * another backup found at its URL (lib/backends/multi/mirrors.ts).
 *
 * @module
 */
import { parseBackupUrl } from "../backends/url.ts";
import type { LockFile } from "../backup/lock_file.ts";
import { copyBackupIds, emptyOnServer } from "../backends/multi/mirrors.ts";
import { backupKind, connectBackend } from "../backends/open.ts";
import { readChain } from "../format/chain.ts";
import { formatBackupId } from "../format/segment.ts";
import { credentialIn } from "../backends/socket/credential.ts";
import { DEFAULT_RETRY_POLICY } from "../backends/socket/options.ts";

/**
 * The id of the backup at `url`, read as the plugin of the node at `dir` would reach it (its
 * S3 keys and server credential); `undefined` for one that has none (the Python plugin's:
 * a v1 file, or a backup on its server). `made`: a copy made before, which must be there.
 */
export async function destinationBackupId(
  url: string,
  dir: string,
  made = false,
): Promise<string | undefined> {
  const parsed = parseBackupUrl(url);
  if (parsed.scheme === "file") {
    const kind = backupKind(parsed.path);
    // The Python plugin's file has no id (the plugin does not append to it anyway).
    if (kind === "v1") return undefined;
    if (kind !== "directory") throw new Error(`no cln-backup backup at "${parsed.path}"`);
    // Read only: the plugin may hold the backup's writer lock meanwhile.
    return formatBackupId(readChain(parsed.path).backupId);
  }
  const credential = parsed.scheme === "socket" ? credentialIn(dir) : undefined;
  // Wire v1, the Python server's: its backup has no id.
  if (parsed.scheme === "socket" && credential === undefined) return undefined;
  const backend = await connectBackend(url, {
    lightningDir: dir,
    // An operator at a terminal gets the failure at once, not after a node's patience.
    socket: { credential, policy: { ...DEFAULT_RETRY_POLICY, retries: 0 } },
  });
  try {
    // A copy made before would be tied to a new, empty one where the server holds none.
    if (made && emptyOnServer(backend)) {
      throw new Error(
        `the server holds no backup of this node there, or an empty one (version 0): tie the copy once the ` +
          `node has written to it, or check the URL and backup.credential`,
      );
    }
    return await backend.backupIdHex?.();
  } finally {
    backend.close();
  }
}

/**
 * `lock` with `url` tied to the backup `id` in `backup_ids`; with none (not read, or a
 * backup without one), untied: an id left by an earlier copy at that URL would have the
 * plugin refuse the new one.
 */
export function tiedLock(lock: LockFile, url: string, id: string | undefined): LockFile {
  const { backup_ids: _, ...rest } = lock;
  const ids = Object.fromEntries(copyBackupIds(lock));
  if (id === undefined) delete ids[url];
  else ids[url] = id;
  return Object.keys(ids).length > 0 ? { ...rest, backup_ids: ids } : rest;
}
