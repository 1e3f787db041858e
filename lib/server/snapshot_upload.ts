/**
 * A snapshot that arrived as a file (SNAPSHOT_FILE: the database deflated, in DATA packets)
 * inflated into the database file the backup's base is made from, a part at a time. The
 * server goes on serving other connections between parts: a large node's database takes
 * seconds to inflate.
 *
 * @module
 */
import { writeAll } from "../fs/durable.ts";
import { nextTurn } from "../fs/next_turn.ts";
import { readFull } from "../fs/read_full.ts";
import { inflateParts } from "../wire/inflate.ts";

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
      await nextTurn();
    }
    return bytes;
  } finally {
    input?.close();
    output?.close();
  }
}
