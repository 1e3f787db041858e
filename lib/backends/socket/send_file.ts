/**
 * Sending a file the node built to the server, read a chunk at a time (never whole in
 * memory): after a packet announcing it (SEALED_BASE, FILE, SNAPSHOT_FILE, SEALED_INIT_FILE)
 * in DATA packets, or, over v1, as the rest of a SNAPSHOT whose header went first.
 *
 * @module
 */
import { dataFrame, sendData } from "../../wire/send_data.ts";
import type { WireConnection } from "./connection.ts";

/** Sends the `size` bytes of the file at `path`, each chunk as `frame` makes it. */
export async function sendFileBytes(
  conn: WireConnection,
  path: string,
  size: number,
  frame: (chunk: Uint8Array) => Uint8Array = dataFrame,
): Promise<void> {
  const file = Deno.openSync(path, { read: true });
  try {
    await sendData((bytes) => conn.send(bytes), file, size, path, frame);
  } finally {
    file.close();
  }
}

/** Sends `announce(size)`, then the file at `path` in DATA packets. */
export async function sendFile(
  conn: WireConnection,
  path: string,
  announce: (size: number) => Uint8Array,
): Promise<void> {
  const size = Deno.statSync(path).size;
  await conn.send(announce(size));
  await sendFileBytes(conn, path, size);
}
