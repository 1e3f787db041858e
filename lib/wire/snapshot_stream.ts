/**
 * A wire v1 SNAPSHOT packet made from a database that arrives in parts (a backup's base, read
 * part by part). Wire v1 sends the whole database in one packet, its length first, so the
 * packet cannot go out before the last part is compressed. The parts are compressed as they
 * come into a spool file, and the packet is sent from there: neither the database nor its
 * compression is held in memory. Where the spool cannot be written (a full disk), the
 * compression is held in memory instead: a restore is never refused for want of disk.
 *
 * @module
 */
import { createDeflate } from "node:zlib";
import { writeAll } from "../fs/durable.ts";
import { removeIfExists } from "../fs/exists.ts";
import { readFull } from "../fs/read_full.ts";
import { encodeSnapshotHead } from "./packets.ts";
import { sendData, unframed } from "./send_data.ts";

/** Output chunks of the compressor: a 1 GB database makes a few hundred, not tens of thousands. */
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
 * A SNAPSHOT packet of the database at `version`, compressed at `level` as parts are added,
 * into a new file at `spool` while that file can be written, and in memory from then on.
 */
export function snapshotStream(version: number, level: number, spool: string): SnapshotStream {
  let file: Deno.FsFile | undefined;
  /** The compression in memory, once the spool failed. */
  let held: Uint8Array[] | undefined;
  try {
    file = Deno.openSync(spool, { read: true, write: true, createNew: true });
  } catch {
    held = [];
  }
  /** Closes and removes the spool this stream made; a path it could not create is not its. */
  const dropSpool = () => {
    if (!file) return;
    file.close();
    file = undefined;
    removeIfExists(spool);
  };
  const deflate = createDeflate({ level, chunkSize: CHUNK_BYTES });
  let bytes = 0;
  let failure: Error | undefined;
  deflate.on("data", (chunk: Uint8Array) => {
    if (failure) return;
    try {
      if (!held) {
        try {
          writeAll(file!, chunk);
        } catch {
          // The chunks written so far back into memory; the spool, and what it took, go.
          const written = new Uint8Array(bytes);
          file!.seekSync(0, Deno.SeekMode.Start);
          if (readFull(file!, written) < bytes) throw new Error(`"${spool}" lost its bytes`);
          held = [written];
          dropSpool();
        }
      }
      held?.push(chunk);
      bytes += chunk.length;
    } catch (error) {
      failure = error as Error;
    }
  });
  let finished = false;
  const ended = new Promise<void>((resolve, reject) => {
    deflate.on("end", () => (finished = true, resolve()));
    deflate.on("error", reject);
  });
  let closed = false;
  return {
    add: (part) =>
      new Promise((resolve, reject) => {
        if (failure) return reject(failure);
        deflate.write(part, (error) => error ? reject(error) : resolve());
      }),
    async send(send) {
      deflate.end();
      await ended;
      if (failure) throw failure;
      await send(encodeSnapshotHead(version, bytes));
      if (held) {
        for (const chunk of held) await send(chunk);
        return;
      }
      file!.seekSync(0, Deno.SeekMode.Start);
      await sendData(send, file!, bytes, spool, unframed);
    },
    close() {
      if (closed) return;
      closed = true;
      ended.catch(() => {});
      // A compression that ended has freed its context already.
      if (!finished) deflate.destroy();
      held = undefined;
      dropSpool();
    },
  };
}
