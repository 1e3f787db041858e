/**
 * zlib's deflate for one packet at a time, through a context kept per level for the thread's
 * life (lib/format/kept_context.ts). A restore over wire v1
 * deflates every change, one call each as the protocol has it: 75 us a call with
 * `deflateSync`, 21 with a kept context (3 KB at level 1, measured in Deno 2.9).
 *
 * @module
 */
import { constants, createDeflate, deflateSync } from "node:zlib";
import { createReadStream, createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { closeContext, contextOf, type KeptContext, runFrame } from "../format/kept_context.ts";

/** Larger inputs go through the one-shot function. */
const CONTEXT_MAX_INPUT = 4 * 1024 * 1024;

/** This thread's contexts by level: `false` where the runtime does not expose them. */
const contexts = new Map<number, KeptContext | false>();

/**
 * Room for deflate's output of `n` bytes in zlib's format: Deno's deflate grows random bytes
 * by about 5.5% at level 1 (measured: 65,536 to 69,144), well past zlib's own bound.
 */
export function deflateBound(n: number): number {
  return n + (n >> 3) + 64;
}

function oneShot(raw: Uint8Array, level: number): Uint8Array {
  const packed = deflateSync(raw, { level });
  return new Uint8Array(packed.buffer, packed.byteOffset, packed.length);
}

/**
 * `raw` deflated at `level` in zlib's format, which inflates back to `raw`. At levels 1 and 2
 * the bytes are `deflateSync(raw, { level })`'s; from level 3 they may differ in a match or
 * two. Deno's zlib (zlib-ng) chooses among matches that run to the input's end by the bytes
 * that lie past it in the window (measured in Deno 2.9.6): a new context has zeros there, a
 * reset one whatever an earlier, longer input left, which a reset does not clear.
 */
export function deflate(raw: Uint8Array, level: number): Uint8Array {
  if (raw.length > CONTEXT_MAX_INPUT) return oneShot(raw, level);
  let context = contexts.get(level);
  if (context === undefined) contexts.set(level, context = contextOf(createDeflate({ level })));
  if (!context) return oneShot(raw, level);
  const output = new Uint8Array(deflateBound(raw.length));
  const left = runFrame(context, constants.Z_FINISH, raw, output);
  // Refused: a new context next time. Out of room (it never should be): the one-shot's bytes.
  if (left === undefined) {
    closeContext(context);
    contexts.delete(level);
  }
  if (!left) return oneShot(raw, level);
  return output.subarray(0, output.length - left);
}

/**
 * The file `from` deflated at `level` into a new file `to` (zlib's format, one stream), read
 * and written a chunk at a time: a database of any size is never whole in memory.
 */
export async function deflateFile(from: string, to: string, level: number): Promise<void> {
  await pipeline(
    createReadStream(from),
    createDeflate({ level, chunkSize: 1 << 20 }),
    createWriteStream(to, { flags: "wx" }),
  );
}
