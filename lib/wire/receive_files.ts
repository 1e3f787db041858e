/**
 * Receiving files over wire v2: FILE (a name and a size), that many bytes in DATA packets, the
 * next FILE, and DONE, as RESTORE's answer and SEALED_UPGRADE's upload carry them
 * (docs/PROTOCOL.md). Each file is written into a directory as its bytes come, created new and
 * never past its announced size.
 *
 * @module
 */
import { writeFully } from "./conn_io.ts";
import type { Packet } from "./packets.ts";
import { decodeFile, decodeVersionFrame, v2Name, V2Type } from "./packets_v2.ts";

/** What a receiver checks and says; the sender's side decides what a refusal is. */
export interface FileStream {
  /** The next packet (a refusal or the end of the stream thrown). */
  next(): Promise<Packet>;
  /** Throws unless a file of this name and size may come. */
  accept(name: string, size: number): void;
  /** The error for a packet out of its place (`what`: what came instead). */
  misplaced(what: string): Error;
  /** fsync each file once whole. */
  sync?: boolean;
}

/** Writes the files `stream` carries into `dir`, until DONE; returns DONE's version. */
export async function receiveFiles(stream: FileStream, dir: string): Promise<number> {
  let file: Deno.FsFile | undefined;
  let left = 0;
  try {
    for (;;) {
      const packet = await stream.next();
      if (packet.type === V2Type.Data && file && packet.payload.length <= left) {
        await writeFully(file, packet.payload);
        left -= packet.payload.length;
        continue;
      }
      if (left > 0 || packet.type === V2Type.Data) {
        throw stream.misplaced(`${v2Name(packet.type)} where ${left} bytes of a file belong`);
      }
      if (stream.sync) await file?.sync();
      file?.close();
      file = undefined;
      if (packet.type === V2Type.Done) return decodeVersionFrame(packet, V2Type.Done);
      const { name, size } = decodeFile(packet);
      stream.accept(name, size);
      try {
        file = await Deno.open(`${dir}/${name}`, { write: true, createNew: true });
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
        throw stream.misplaced(`FILE ${JSON.stringify(name)} a second time`);
      }
      left = size;
    }
  } finally {
    file?.close();
  }
}
