/**
 * A pause until the event loop's next turn, for long synchronous work done in steps on a
 * thread that serves others meanwhile (the server building a large node's base).
 *
 * @module
 */

/**
 * Work between two pauses that park the thread, at most: other connections wait no longer
 * for their packets to be read. Each such pause costs a timer's 1 to 2 ms.
 */
const PARK_EVERY_MS = 20;

let parked = performance.now();

/**
 * Resolves once the event loop has had its turn. Mostly through an asynchronous no-op on
 * the runtime's thread pool, a `stat` of `file`, which the work holds open (60 us in Deno 2.9):
 * the loop polls for I/O (other connections' packets) then only if it found nothing else to
 * run meanwhile, which a busy or loaded thread may not for a whole base (a test's second
 * connection went unanswered once in a parallel run). So at least every
 * {@linkcode PARK_EVERY_MS} of work the pause is a timer, which parks the thread until it
 * fires, polling for I/O. `setTimeout(0)` alone takes 2.1 ms a turn (timers have a
 * millisecond's grain: a 650 MB database's parts, inflated then made a base, waited seconds);
 * `setImmediate` or a `MessageChannel` run their callbacks without polling for I/O.
 */
export async function nextTurn(file: Deno.FsFile): Promise<void> {
  const now = performance.now();
  if (now - parked < PARK_EVERY_MS) return void await file.stat();
  await new Promise((resolve) => setTimeout(resolve, 0));
  parked = performance.now();
}
