/**
 * Statements as lightningd writes them, for tests that build their own transactions.
 *
 * @module
 */

/** The version bump lightningd ends each transaction with, from version `from`. */
export function bumpStatement(from: number): string {
  return `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${from}`;
}
