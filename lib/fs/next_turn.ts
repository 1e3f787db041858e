/**
 * A pause until the event loop's next turn, for long synchronous work done in steps on a
 * thread that serves others meanwhile (the server building a large node's base).
 *
 * @module
 */

/**
 * Resolves once the event loop has polled for I/O (other connections' packets), through an
 * asynchronous no-op on the runtime's thread pool: a `stat` of `file`, which the work holds
 * open. Measured in Deno 2.9: 60 us a turn. `setTimeout(0)` takes 2.1 ms (timers have a
 * millisecond's grain: a 650 MB database's parts, inflated then made a base, waited seconds),
 * and `setImmediate` or a `MessageChannel` run their callbacks without polling for I/O (another
 * connection got no answer until the base was made).
 */
export async function nextTurn(file: Deno.FsFile): Promise<void> {
  await file.stat();
}
