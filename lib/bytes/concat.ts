/**
 * Byte arrays joined into one: a packet's pieces, an answer's chunks, a pack's records.
 *
 * @module
 */

/**
 * `parts` one after another in one array. A single part is returned as it is, not copied:
 * callers hand over parts they no longer change.
 */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
