/**
 * The version bump lightningd ends each transaction with:
 * `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = M`.
 *
 * @module
 */

const BUMP =
  /^\s*UPDATE\s+vars\s+SET\s+intval\s*=\s*intval\s*\+\s*1\s+WHERE\s+name\s*=\s*'data_version'\s+AND\s+intval\s*=\s*(\d+)\s*;?\s*$/i;

/**
 * The version the database held before this transaction (`M` of the bump statement), or
 * `undefined` when the transaction does not end with a bump (the PRAGMA hooks of migrations).
 */
export function bumpedFrom(statements: readonly string[]): number | undefined {
  const last = statements.at(-1);
  if (last === undefined) return undefined;
  const match = BUMP.exec(last);
  return match ? Number(match[1]) : undefined;
}
