/**
 * Whether the server can read a secret `server init-tls` or `add-node` made in its root: the
 * server runs as the root's owner, and a key file is mode 0600.
 *
 * @module
 */

/** The root's owner and the user who made the secret, when they differ. */
export interface OtherOwner {
  owner: number;
  user: number;
}

/**
 * The owners of `root` and of `path` (mode 0600, just made in it) when the server, run as the
 * root's owner, could not read it. A root root owns is never refused: a server run as root
 * reads any file, and another user writes there only as one the root was made for (its group,
 * `install -d -g clnbackup -m 0770`), whose key a server run as that user reads.
 */
export function unreadableByServer(root: string, path: string): OtherOwner | undefined {
  const owner = Deno.statSync(root).uid;
  const user = Deno.statSync(path).uid;
  if (owner === null || user === null || owner === 0 || owner === user) return undefined;
  return { owner, user };
}
