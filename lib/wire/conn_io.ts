/**
 * The two things every end of a connection does the same way: write a whole buffer (a
 * `write` may take part of it; also into the file a received file goes to), and close a
 * connection the peer may have closed already.
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
