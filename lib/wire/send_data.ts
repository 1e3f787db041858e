/**
 * Sending a file's bytes over wire v2 after the packet that announces it (FILE, SEALED_BASE):
 * DATA packets read from the file a chunk at a time, so a file of any size is never whole in
 * memory. The twin of receive_files.ts.
 *
 * @module
 */
import { DATA_CHUNK_BYTES, encodeFrame, V2Type } from "./packets_v2.ts";

/** Sends the `size` bytes of `file` (named `name` in errors) through `send`, as DATA packets. */
export async function sendData(
  send: (frame: Uint8Array) => Promise<void>,
  file: Deno.FsFile,
  size: number,
  name: string,
): Promise<void> {
  const buffer = new Uint8Array(Math.min(DATA_CHUNK_BYTES, size));
  for (let left = size; left > 0;) {
    const n = file.readSync(buffer.subarray(0, Math.min(left, buffer.length)));
    if (n === null) throw new Error(`"${name}" ended before its ${size} bytes`);
    await send(encodeFrame(V2Type.Data, buffer.subarray(0, n)));
    left -= n;
  }
}
