/**
 * Sending a file the node built to the server: a packet announcing it (SEALED_BASE, FILE),
 * then its bytes in DATA packets, read from the file a chunk at a time (never whole in
 * memory).
 *
 * @module
 */
import { DATA_CHUNK_BYTES, encodeFrame, V2Type } from "../../wire/packets_v2.ts";
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
    const buffer = new Uint8Array(DATA_CHUNK_BYTES);
    for (let left = size; left > 0;) {
      const n = file.readSync(buffer.subarray(0, Math.min(left, buffer.length)));
      if (n === null) throw new Error(`"${path}" ended before its ${size} bytes`);
      await conn.send(encodeFrame(V2Type.Data, buffer.subarray(0, n)));
      left -= n;
    }
  } finally {
    file.close();
  }
}
