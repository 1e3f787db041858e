/**
 * Sending a file the node built to the server: a packet announcing it (SEALED_BASE, FILE),
 * then its bytes in DATA packets, read from the file a chunk at a time (never whole in
 * memory).
 *
 * @module
 */
import { sendData } from "../../wire/send_data.ts";
import type { WireConnection } from "./connection.ts";

/** Sends `announce(size)`, then the file at `path` in DATA packets. */
export async function sendFile(
  conn: WireConnection,
  path: string,
  announce: (size: number) => Uint8Array,
): Promise<void> {
  const file = Deno.openSync(path, { read: true });
  try {
    const size = file.statSync().size;
    await conn.send(announce(size));
    await sendData((frame) => conn.send(frame), file, size, path);
  } finally {
    file.close();
  }
}
