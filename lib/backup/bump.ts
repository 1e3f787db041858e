/**
 * The version bump lightningd ends each transaction with:
 * `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = M`.
 *
 * @module
 */

const BUMP =
  /^UPDATE\s+vars\s+SET\s+intval\s*=\s*intval\s*\+\s*1\s+WHERE\s+name\s*=\s*'data_version'\s+AND\s+intval\s*=\s*(\d+)\s*;?$/i;
/** A bump is about 90 characters; a longer last statement is not one (and is not scanned). */
const MAX_BUMP_LENGTH = 256;

/**
 * The version the database held before this transaction (`M` of the bump statement), or
 * `undefined` when the transaction does not end with a bump (the PRAGMA hooks of migrations).
 */
export function bumpedFrom(statements: readonly string[]): number | undefined {
  const last = statements.at(-1);
  if (last === undefined || last.length > MAX_BUMP_LENGTH) return undefined;
  const match = BUMP.exec(last.trim());
  return match ? Number(match[1]) : undefined;
}
