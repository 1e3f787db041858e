/**
 * Old lightningd versions (before PR 4090) expanded some statements without a space
 * before `WHERE` (`reserved_til=123WHERE ...`); backups written then still hold them.
 *
 * @module
 */

const SUSPECT = /\dWHERE/;

/** Inserts the missing space, as lightningd's fix does; leaves every other statement alone. */
export function repairStatement(statement: string): string {
  if (!SUSPECT.test(statement)) return statement;
  return statement
    .replace(/reserved_til=(\d+)WHERE/g, "reserved_til=$1 WHERE")
    .replace(/peer_id=(\d+)WHERE channels\.id=/g, "peer_id=$1 WHERE channels.id=");
}
