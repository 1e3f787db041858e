/**
 * A snapshot that arrives as a file (SNAPSHOT_FILE's DATA packets, or a wire v1 SNAPSHOT's
 * payload as it is read) inflated into the database file the backup's base is made from, a
 * part at a time. The server goes on serving other connections between parts: a large node's
 * database takes seconds to inflate.
 *
 * @module
 */
import { writeAll } from "../fs/durable.ts";
import { nextTurn } from "../fs/next_turn.ts";
import { readFull } from "../fs/read_full.ts";
import { inflateParts } from "../wire/inflate.ts";
import { WireError } from "../wire/packets.ts";
import type { PacketReader } from "../wire/packet_reader.ts";

const PART_BYTES = 1 << 20;

/**
 * Inflates the `size` bytes in `from` into a new file `to`, at most `maxBytes`, and returns
 * the database's size; throws an `InflateError` for a stream that is damaged, cut short or
 * over `maxBytes`.
 */
export async function inflateUpload(
  from: string,
  size: number,
  to: string,
  maxBytes: number,
): Promise<number> {
  let input: Deno.FsFile | undefined;
  let output: Deno.FsFile | undefined;
  try {
    input = Deno.openSync(from, { read: true });
    output = Deno.openSync(to, { write: true, createNew: true });
    const file = input;
    const read = (into: Uint8Array) => {
      if (readFull(file, into) < into.length) {
        throw new Error(`"${from}" ended before its ${size} bytes`);
      }
    };
    let bytes = 0;
    for (const part of inflateParts(read, size, { partBytes: PART_BYTES, maxBytes })) {
      writeAll(output, part);
      bytes += part.length;
      await nextTurn(output);
    }
    return bytes;
  } finally {
    input?.close();
    output?.close();
  }
}

/** A wire v1 SNAPSHOT received into a file: its version, and its deflated bytes' count. */
export interface ReceivedSnapshot {
  version: number;
  size: number;
  /** Why the file is not whole (the disk failed); the packet was still read to its end. */
  failure?: Error;
}

/**
 * Reads the SNAPSHOT that `reader` is at (`u32 version`, then the database deflated) and
 * writes its deflated bytes, as they arrive, to a new file at the path `keep` gives for their
 * count; where it gives none, reads and drops them. A write that fails leaves the rest of the
 * packet read and dropped, so the connection can still be answered.
 */
export async function receiveSnapshot(
  reader: PacketReader,
  keep: (deflatedBytes: number) => string | undefined,
): Promise<ReceivedSnapshot> {
  const head = new Uint8Array(4);
  let [headBytes, size, length] = [0, 0, 0];
  let failure: Error | undefined;
  let file: Deno.FsFile | undefined;
  try {
    await reader.nextTo({
      start(_type, n) {
        length = n;
        const path = keep(Math.max(0, n - head.length));
        try {
          if (path !== undefined) file = Deno.openSync(path, { write: true, createNew: true });
        } catch (error) {
          failure = error as Error;
        }
      },
      write(piece) {
        const taken = Math.min(head.length - headBytes, piece.length);
        head.set(piece.subarray(0, taken), headBytes);
        headBytes += taken;
        const body = piece.subarray(taken);
        size += body.length;
        if (!file || failure || body.length === 0) return;
        try {
          writeAll(file, body);
        } catch (error) {
          failure = error as Error;
        }
      },
    });
  } finally {
    file?.close();
  }
  if (headBytes < head.length) throw new WireError(`SNAPSHOT is ${length} bytes, under 4`);
  const version = new DataView(head.buffer).getUint32(0);
  return failure ? { version, size, failure } : { version, size };
}
