/**
 * The newest block a restored lightningd database had processed. lightningd stores each
 * block it processes (`blocks`, in the transaction the backup's hook sees), so a backup
 * written until the node stopped ends near the block the node had reached then: a restore
 * can name that block, which the node's operator can date, where the backup's own files
 * cannot show that it was taken back in time.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/** The highest height in `blocks`; `undefined` when the table is missing or empty. */
export function lastBlock(db: DatabaseSync): number | undefined {
  const table = db.prepare(
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blocks'",
  ).get();
  if (!table) return undefined;
  const height = db.prepare("SELECT MAX(height) AS height FROM blocks").get()?.height;
  return typeof height === "number" || typeof height === "bigint" ? Number(height) : undefined;
}
