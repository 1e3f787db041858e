/**
 * What `compact`, run as root, adds to a backup that the plugin writes as lightningd's user
 * takes the owner of the segments beside it: a root-owned base or live log stopped the node
 * at its next start, as did the scratch directory a killed compaction left, which the
 * plugin's open could not remove.
 *
 * @module
 */

/**
 * Gives `path` the owner of `like`. Only root may give a file away: for anyone else it stays
 * theirs (the plugin's own compaction, beside its own segments).
 */
export function ownerLike(path: string, like: string): void {
  const want = Deno.statSync(like);
  const has = Deno.statSync(path);
  if (want.uid === null || want.gid === null) return;
  if (want.uid === has.uid && want.gid === has.gid) return;
  try {
    Deno.chownSync(path, want.uid, want.gid);
  } catch (error) {
    if (!(error instanceof Deno.errors.PermissionDenied)) throw error;
  }
}

/** Gives the file at `path` the owner and permission bits of the file at `like`. */
export function ownLike(path: string, like: string): void {
  ownerLike(path, like);
  const want = Deno.statSync(like).mode;
  const has = Deno.statSync(path).mode;
  if (want !== null && has !== null && (want & 0o777) !== (has & 0o777)) {
    Deno.chmodSync(path, want & 0o777);
  }
}
