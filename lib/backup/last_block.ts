/**
 * The newest block a restored lightningd database had processed. lightningd stores each
 * block it processes (`blocks`, in the transaction the backup's hook sees; at each start it
 * deletes the last 15 or so to process them again), so a backup written until the node
 * stopped ends near the block the node had reached then: a restore can name that block,
 * which the node's operator can date, where the backup's own files cannot show that it is
 * hours behind.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/**
 * The highest height in `blocks`; `undefined` when the table is missing, empty, or not
 * lightningd's (a note is no reason to fail a restore).
 */
export function lastBlock(db: DatabaseSync): number | undefined {
  try {
    const height = db.prepare("SELECT MAX(height) AS height FROM blocks").get()?.height;
    return typeof height === "number" || typeof height === "bigint" ? Number(height) : undefined;
  } catch {
    return undefined;
  }
}
