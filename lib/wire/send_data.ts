/**
 * Sending a file's bytes after the packet that announces it (v2's FILE, SEALED_BASE): DATA
 * packets read from the file a chunk at a time, so a file of any size is never whole in
 * memory. The twin of receive_files.ts. Wire v1 sends them as they are, the rest of a packet
 * whose header went first.
 *
 * @module
 */
import { DATA_CHUNK_BYTES, encodeFrame, V2Type } from "./packets_v2.ts";

/** A chunk of a file as v2 sends it: one DATA packet. */
export function dataFrame(chunk: Uint8Array): Uint8Array {
  return encodeFrame(V2Type.Data, chunk);
}

/** A chunk as wire v1 sends it: as it is, the rest of a packet whose header went first. */
export function unframed(chunk: Uint8Array): Uint8Array {
  return chunk;
}

/**
 * Sends the `size` bytes of `file` (named `name` in errors) through `send`, each chunk as
 * `frame` makes it: DATA packets by default. A chunk's buffer is reused once `send` resolves.
 */
export async function sendData(
  send: (frame: Uint8Array) => Promise<void>,
  file: Deno.FsFile,
  size: number,
  name: string,
  frame: (chunk: Uint8Array) => Uint8Array = dataFrame,
): Promise<void> {
  const buffer = new Uint8Array(Math.min(DATA_CHUNK_BYTES, size));
  for (let left = size; left > 0;) {
    const n = file.readSync(buffer.subarray(0, Math.min(left, buffer.length)));
    if (n === null) throw new Error(`"${name}" ended before its ${size} bytes`);
    await send(frame(buffer.subarray(0, n)));
    left -= n;
  }
}
