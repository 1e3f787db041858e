/**
 * What `compact`, run as root, adds to a backup that the plugin writes as lightningd's user
 * takes the owner of the segments beside it: a root-owned base or live log stopped the node
 * at its next start. (Its scratch directory stays root's: root works in it by name.)
 *
 * Nothing here follows a symlink: a log's owner could have made it one, and root would then
 * give that user the file it points to (/etc/shadow, say).
 *
 * @module
 */
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, openSync } from "node:fs";

/** `like`'s owner and mode, read from it and not from what it may link to. */
function ownerOf(like: string): Deno.FileInfo {
  const info = Deno.lstatSync(like);
  if (info.isSymlink) {
    throw new Error(
      `Cannot copy the owner of "${like}": it is a symlink, not a file of the backup: ` +
        `replace it with the file it stands for`,
    );
  }
  return info;
}

/** Runs `change` on `path` opened without following a symlink there (nor waiting on a FIFO). */
function onOwnHandle(
  path: string,
  change: (fd: number, has: { uid: number; gid: number; mode: number }) => void,
): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as { code?: string }).code !== "ELOOP") throw error;
    throw new Error(
      `Cannot give "${path}" the owner of the backup's files: it is a symlink, put there ` +
        `while it was written: check who else writes to that directory`,
    );
  }
  try {
    change(fd, fstatSync(fd));
  } finally {
    closeSync(fd);
  }
}

/** Gives the open `fd` the owner of `want`; only root may give a file away. */
function chownHandle(fd: number, has: { uid: number; gid: number }, want: Deno.FileInfo): void {
  if (want.uid === null || want.gid === null) return;
  if (want.uid === has.uid && want.gid === has.gid) return;
  try {
    fchownSync(fd, want.uid, want.gid);
  } catch (error) {
    if ((error as { code?: string }).code !== "EPERM") throw error;
  }
}

/** Gives the file at `path` the owner and permission bits of the file at `like`. */
export function ownLike(path: string, like: string): void {
  const want = ownerOf(like);
  onOwnHandle(path, (fd, has) => {
    chownHandle(fd, has, want);
    if (want.mode !== null && (want.mode & 0o777) !== (has.mode & 0o777)) {
      fchmodSync(fd, want.mode & 0o777);
    }
  });
}
