/**
 * Statements as lightningd writes them, for tests that build their own transactions.
 *
 * @module
 */

/** The version bump lightningd ends each transaction with, from version `from`. */
export function bumpStatement(from: number): string {
  return `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${from}`;
}

/**
 * 150 CJK characters, different for each `seed`: each one UTF-16 unit and three bytes in
 * UTF-8, 450 bytes that do not compress.
 */
export function cjkText(seed: number): string {
  return String.fromCharCode(
    ...Array.from({ length: 150 }, (_, i) => 0x4e00 + ((seed * 151 + i) * 7919) % 20_000),
  );
}
