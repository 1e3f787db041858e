/**
 * Byte arrays joined into one, for tests that collect pieces (packets, parts, chunks).
 *
 * @module
 */

/** `parts` one after another in a new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
