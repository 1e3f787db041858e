/**
 * A pause until the event loop's next turn, for long synchronous work done in steps on a
 * thread that serves others meanwhile (the server building a large node's base).
 *
 * @module
 */

/** Resolves once the event loop has run what was waiting (timers, I/O). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
