/**
 * Shell words, as the operator pastes them into a shell.
 *
 * @module
 */

/** `word` as one shell word, in single quotes: a URL's `&` and `?` stay in it. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
