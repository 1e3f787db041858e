/**
 * A wire v1 SNAPSHOT packet made from a database that arrives in parts (a backup's base, read
 * part by part). Wire v1 sends the whole database in one packet, its length first, so the
 * packet cannot go out before the last part is compressed. The parts are compressed as they
 * come into a spool file, and the packet is sent from there: neither the database nor its
 * compression is ever whole in memory.
 *
 * @module
 */
import { createDeflate } from "node:zlib";
import { writeAll } from "../fs/durable.ts";
import { removeIfExists } from "../fs/exists.ts";
import { encodeSnapshotHead } from "./packets.ts";
import { sendData } from "./send_data.ts";

/** Output chunks of the compressor, and the reads of the spool when sending. */
const CHUNK_BYTES = 1 << 20;

export interface SnapshotStream {
  /** Compresses the next part; once it resolves, the part's buffer may be reused. */
  add(part: Uint8Array): Promise<void>;
  /**
   * Ends the compression, then sends the packet through `send`: its header, then the
   * compressed database a chunk at a time, each chunk's buffer reused once `send` resolves.
   * It decodes as `encodeSnapshot`'s of the parts joined does; its bytes differ a little, zlib
   * ending its blocks otherwise when it does not see the whole input at once.
   */
  send(send: (bytes: Uint8Array) => Promise<void>): Promise<void>;
  /** Drops the compression and removes the spool: once the packet is sent, or instead. */
  close(): void;
}

/**
 * A SNAPSHOT packet of the database at `version`, compressed at `level` as parts are added
 * into a new file at `spool`. A spool that cannot be written fails {@linkcode SnapshotStream.send}.
 */
export function snapshotStream(version: number, level: number, spool: string): SnapshotStream {
  const file = Deno.openSync(spool, { read: true, write: true, createNew: true });
  const deflate = createDeflate({ level, chunkSize: CHUNK_BYTES });
  let bytes = 0;
  let failure: Error | undefined;
  deflate.on("data", (chunk: Uint8Array) => {
    if (failure) return;
    try {
      writeAll(file, chunk);
      bytes += chunk.length;
    } catch (error) {
      failure = error as Error;
    }
  });
  const ended = new Promise<void>((resolve, reject) => {
    deflate.on("end", resolve);
    deflate.on("error", reject);
  });
  let closed = false;
  return {
    add: (part) =>
      new Promise((resolve, reject) => {
        deflate.write(part, (error) => error ? reject(error) : resolve());
      }),
    async send(send) {
      deflate.end();
      await ended;
      if (failure) throw failure;
      await send(encodeSnapshotHead(version, bytes));
      file.seekSync(0, Deno.SeekMode.Start);
      await sendData(send, file, bytes, spool, (chunk) => chunk);
    },
    close() {
      if (closed) return;
      closed = true;
      ended.catch(() => {});
      deflate.destroy();
      file.close();
      removeIfExists(spool);
    },
  };
}
