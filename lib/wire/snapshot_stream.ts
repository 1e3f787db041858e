/**
 * A wire v1 SNAPSHOT packet made from a database that arrives in parts (a backup's base, read
 * part by part). Wire v1 sends the whole database in one packet, its length first, so the
 * packet cannot go out before the last part is compressed; compressing the parts as they come
 * holds only the compressed database, where joining them first held the database twice and
 * its compression as well.
 *
 * @module
 */
import { createDeflate } from "node:zlib";
import { encodeSnapshotHead } from "./packets.ts";

/** Output chunks of the compressor: a 1 GB database makes a few hundred, not tens of thousands. */
const CHUNK_BYTES = 1 << 20;

export interface SnapshotStream {
  /** Compresses the next part; once it resolves, the part's buffer may be reused. */
  add(part: Uint8Array): Promise<void>;
  /**
   * The packet, as buffers to send in order. It decodes as `encodeSnapshot`'s of the parts
   * joined does; its bytes differ a little, zlib ending its blocks otherwise when it does not
   * see the whole input at once.
   */
  end(): Promise<Uint8Array[]>;
  /** Drops the compression, for a snapshot that will not be sent (its reading failed). */
  cancel(): void;
}

/** A SNAPSHOT packet of the database at `version`, compressed at `level` as parts are added. */
export function snapshotStream(version: number, level: number): SnapshotStream {
  const deflate = createDeflate({ level, chunkSize: CHUNK_BYTES });
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  deflate.on("data", (chunk: Uint8Array) => {
    chunks.push(chunk);
    bytes += chunk.length;
  });
  const ended = new Promise<void>((resolve, reject) => {
    deflate.on("end", resolve);
    deflate.on("error", reject);
  });
  return {
    add: (part) =>
      new Promise((resolve, reject) => {
        deflate.write(part, (error) => error ? reject(error) : resolve());
      }),
    async end() {
      deflate.end();
      await ended;
      return [encodeSnapshotHead(version, bytes), ...chunks];
    },
    cancel() {
      ended.catch(() => {});
      deflate.destroy();
    },
  };
}
