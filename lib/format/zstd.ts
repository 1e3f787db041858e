/**
 * zstd for one record at a time, through a context kept for the thread's life
 * (kept_context.ts).
 *
 * `zstdCompressSync` and `zstdDecompressSync` of node:zlib set up a new zstd context on every
 * call: measured in Deno 2.9 on a 5 KB payload, 38 us to compress and 26 us to decompress, of
 * which zstd's own work is 14 and 4. The hook pays the first on every `db_write` it
 * compresses, and a restore the second on every change. So each thread keeps one compressor
 * and one decompressor; where the runtime does not expose their contexts, the one-shot
 * functions do the same work, slower.
 *
 * @module
 */
import {
  constants,
  createZstdCompress,
  createZstdDecompress,
  zstdCompressSync,
  zstdDecompressSync,
} from "node:zlib";
import { closeContext, contextOf, type KeptContext, runFrame } from "./kept_context.ts";
import type { ReusedBuffer } from "../fs/kept_buffer.ts";

/**
 * zstd at level 1: lightningd's values are hex, which it packs to about 4 bits a character
 * (measured on the recorded activity run: 0.56 of the raw size; deflate level 1 gave 0.89),
 * and it decodes about twice as fast as inflate, which is what a restore waits on.
 */
const LEVEL = { params: { [constants.ZSTD_c_compressionLevel]: 1 } };
/** Larger outputs go through the one-shot function, which collects them in chunks. */
const CONTEXT_MAX_OUTPUT = 4 * 1024 * 1024;

/** This thread's contexts: `false` where the runtime does not expose them. */
let compressor: KeptContext | false | undefined;
let decompressor: KeptContext | false | undefined;

/** The most bytes {@linkcode zstdCompress} makes of `rawLength` bytes. */
export function zstdBound(rawLength: number): number {
  // zstd's bound for one frame (ZSTD_COMPRESSBOUND) with room to spare.
  return rawLength + (rawLength >> 7) + 512;
}

/**
 * `raw` as one zstd frame at level 1, its content size in the frame header: in `into` when
 * it holds {@linkcode zstdBound} bytes (a caller that compresses part after part reuses one
 * buffer instead of leaving one a part to the garbage collector), else in a new buffer.
 */
export function zstdCompress(raw: Uint8Array, into?: Uint8Array): Uint8Array {
  const bound = zstdBound(raw.length);
  if (bound > CONTEXT_MAX_OUTPUT) return zstdCompressSync(raw, LEVEL);
  compressor ??= contextOf(createZstdCompress(LEVEL));
  if (!compressor) return zstdCompressSync(raw, LEVEL);
  const output = into && into.length >= bound ? into.subarray(0, bound) : new Uint8Array(bound);
  const left = runFrame(compressor, constants.ZSTD_e_end, raw, output);
  if (left === undefined || left === 0) {
    closeContext(compressor);
    compressor = undefined;
    return zstdCompressSync(raw, LEVEL);
  }
  return output.subarray(0, bound - left);
}

/**
 * The `rawLength` bytes that one zstd frame decodes to; `undefined` when it does not decode,
 * or decodes to another length. In the buffer `into` gives, when given (a reader that passes
 * each payload on before it decodes the next reuses one), else in a new one; a payload of 4
 * MiB or more, or one that only the one-shot function decodes, is always in a new one.
 */
export function zstdDecompress(
  stored: Uint8Array,
  rawLength: number,
  into?: ReusedBuffer,
): Uint8Array | undefined {
  if (stored.length === 0) return undefined; // not a frame, whatever zstd makes of it
  if (rawLength >= CONTEXT_MAX_OUTPUT) return oneShot(stored, rawLength);
  decompressor ??= contextOf(createZstdDecompress());
  if (!decompressor) return oneShot(stored, rawLength);
  // One byte more than promised: a frame that decodes to more fills it, and is refused.
  const output = into
    ? into(rawLength + 1).subarray(0, rawLength + 1)
    : new Uint8Array(rawLength + 1);
  const left = runFrame(decompressor, constants.ZSTD_e_end, stored, output);
  if (left === 1) return output.subarray(0, rawLength);
  if (left === undefined) {
    closeContext(decompressor);
    decompressor = undefined;
  }
  // Anything else gets the one-shot function's verdict, as every record did before this
  // context: it also reads the empty frame that it appended to outputs over 16 KiB.
  return oneShot(stored, rawLength);
}

function oneShot(stored: Uint8Array, rawLength: number): Uint8Array | undefined {
  try {
    const raw = zstdDecompressSync(stored, {
      // One output chunk of the known size (up to 4 MiB): 1.6x faster than 16 KiB chunks.
      chunkSize: Math.min(CONTEXT_MAX_OUTPUT, Math.max(64, rawLength)),
      maxOutputLength: Math.max(1, rawLength),
    });
    return raw.length === rawLength
      ? new Uint8Array(raw.buffer, raw.byteOffset, raw.length)
      : undefined;
  } catch {
    return undefined;
  }
}
