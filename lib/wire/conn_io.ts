/**
 * What every end of a connection does the same way: write a whole buffer (a `write` may
 * take part of it; also into the file a received file goes to), close a connection the peer
 * may have closed already, and tell a lost connection from other errors.
 *
 * @module
 */

/** Anything with Deno's `write` (a `Deno.Conn`, a `Deno.FsFile`). */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<number>;
}

/** Writes all of `bytes`. */
export async function writeFully(conn: ByteSink, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Closes `conn`; one already closed (by the peer's reset, or by us) is no error. */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** The peer went away, or the server closed the connection: nothing to tell it. */
export function lostConnection(error: unknown): boolean {
  return [
    Deno.errors.ConnectionReset,
    Deno.errors.ConnectionAborted,
    Deno.errors.BrokenPipe,
    Deno.errors.NotConnected,
    Deno.errors.UnexpectedEof,
    Deno.errors.BadResource,
    Deno.errors.Interrupted,
    Deno.errors.TimedOut,
  ].some((kind) => error instanceof kind);
}
