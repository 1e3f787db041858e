/**
 * A snapshot that arrived as a file (SNAPSHOT_FILE: the database deflated, in DATA packets)
 * inflated into the database file the backup's base is made from, a part at a time. The
 * server goes on serving other connections between parts: a large node's database takes
 * seconds to inflate.
 *
 * @module
 */
import { writeAll } from "../fs/durable.ts";
import { InflateError, inflateParts } from "../wire/inflate.ts";
import { WireError } from "../wire/packets.ts";
import { MAX_DATABASE_BYTES } from "../wire/packets_v2.ts";

const PART_BYTES = 1 << 20;

const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Inflates the `size` bytes in `from` into a new file `to` and returns the database's size;
 * a stream that is damaged, cut short or inflates past {@linkcode MAX_DATABASE_BYTES} is a
 * {@linkcode WireError} naming `what`.
 */
export async function inflateUpload(
  from: string,
  size: number,
  to: string,
  what: string,
): Promise<number> {
  const input = Deno.openSync(from, { read: true });
  const output = Deno.openSync(to, { write: true, createNew: true });
  const read = (into: Uint8Array) => {
    for (let at = 0; at < into.length;) {
      const n = input.readSync(into.subarray(at));
      if (n === null) throw new Error(`"${from}" ended before its ${size} bytes`);
      at += n;
    }
  };
  let bytes = 0;
  try {
    const parts = { partBytes: PART_BYTES, maxBytes: MAX_DATABASE_BYTES };
    for (const part of inflateParts(read, size, parts)) {
      writeAll(output, part);
      bytes += part.length;
      await turn();
    }
  } catch (error) {
    if (!(error instanceof InflateError)) throw error;
    throw new WireError(`${what} does not decompress: ${error.message}`);
  } finally {
    input.close();
    output.close();
  }
  return bytes;
}
