/**
 * zlib's inflate through a context kept per thread (lib/format/kept_context.ts). Wire v1
 * inflates every CHANGE (on our server for each hook of a Python plugin, on a v1 restore for
 * each change), wire v2 every body over its raw limit: `inflateSync` sets up a context each
 * call, 26 to 35 us for a 5 KB change against 15 to 18 with a kept one (measured in Deno 2.9).
 * {@linkcode inflateParts} inflates a stream part by part, so that a v1 SNAPSHOT of any size
 * is never whole in memory.
 *
 * node:zlib reports a cut or damaged stream through its handle's `onerror`, not by throwing:
 * a context is kept only where a self-test shows that it does.
 *
 * @module
 */
import { constants, createInflate, deflateSync, inflateSync } from "node:zlib";
import { closeContext, contextOf, type KeptContext } from "../format/kept_context.ts";

/** A zlib stream is damaged or cut short, or inflates past its limit (`overLimit`). */
export class InflateError extends Error {
  constructor(message: string, readonly overLimit = false) {
    super(message);
    this.name = "InflateError";
  }
}

/**
 * The most a snapshot's database may inflate to when it arrives in parts: more than any
 * node's. Past it the stream is a zlib bomb, not a database, and is refused.
 */
export const MAX_DATABASE_BYTES = 64 * 2 ** 30;

/** A context, and the first error zlib reported on it since it was last cleared. */
interface Inflater {
  context: KeptContext;
  error: string | undefined;
}

/** The output buffer of {@linkcode inflate}; a larger output goes through `inflateSync`. */
const OUTPUT_BYTES = 1 << 20;

/** A stream cut short: its context must report it, or it cannot be trusted with input. */
const CUT = deflateSync(new Uint8Array(64)).subarray(0, 4);

/** One write of `input` from `inputAt` into `output` from `outputAt`. */
function run(
  inflater: Inflater,
  flush: number,
  input: Uint8Array,
  inputAt: number,
  output: Uint8Array,
  outputAt: number,
): void {
  inflater.error = undefined;
  try {
    inflater.context.handle.writeSync(
      flush,
      input,
      inputAt,
      input.length - inputAt,
      output,
      outputAt,
      output.length - outputAt,
    );
  } catch (error) {
    inflater.error ??= (error as Error).message;
  }
}

/** A new context, or `false` where the runtime lacks one that reports errors. */
function newInflater(): Inflater | false {
  const context = contextOf(createInflate());
  if (!context) return false;
  const inflater: Inflater = { context, error: undefined };
  (context.handle as { onerror?: unknown }).onerror = (message: string) => {
    inflater.error ??= message;
  };
  run(inflater, constants.Z_FINISH, CUT, 0, new Uint8Array(128), 0);
  if (inflater.error === undefined) {
    closeContext(context);
    return false;
  }
  context.handle.reset();
  inflater.error = undefined;
  return inflater;
}

/** This thread's context for {@linkcode inflate}: undefined until first used or after an error. */
let kept: Inflater | false | undefined;
let keptOutput: Uint8Array | undefined;

/** `inflateSync`'s output, its limit node:zlib's own unless `maxBytes` is given. */
function oneShot(packed: Uint8Array, maxBytes?: number): Uint8Array {
  try {
    const raw = inflateSync(packed, maxBytes === undefined ? {} : { maxOutputLength: maxBytes });
    return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
  } catch (error) {
    // node:zlib's output limit is a RangeError (ERR_BUFFER_TOO_LARGE).
    throw new InflateError((error as Error).message, error instanceof RangeError);
  }
}

/**
 * `packed` (zlib's format) inflated, as `inflateSync(packed, { maxOutputLength: maxBytes })`
 * gives it: throws an {@linkcode InflateError} when the stream is damaged or cut short, or its
 * output passes `maxBytes`; bytes after the stream's end are ignored.
 */
export function inflate(packed: Uint8Array, maxBytes: number): Uint8Array {
  // Most such inputs inflate past the buffer, which would be work thrown away.
  if (packed.length >= OUTPUT_BYTES) return oneShot(packed, maxBytes);
  kept ??= newInflater();
  if (!kept) return oneShot(packed, maxBytes);
  const output = keptOutput ??= new Uint8Array(OUTPUT_BYTES);
  run(kept, constants.Z_FINISH, packed, 0, output, 0);
  const { error, context } = kept;
  if (error !== undefined) {
    closeContext(context);
    kept = undefined;
    throw new InflateError(error);
  }
  const outputLeft = context.left[0];
  context.handle.reset();
  // A full buffer may not be the whole output.
  if (outputLeft === 0) return oneShot(packed, maxBytes);
  const length = output.length - outputLeft;
  if (length > maxBytes) throw new InflateError(`it inflates to ${length} bytes`, true);
  return output.slice(0, length);
}

/** How {@linkcode inflateParts} cuts its input and output. */
export interface PartsOptions {
  /** The size of each part of the output but the last. */
  partBytes: number;
  /** The most the stream may inflate to: a larger output is refused part way. */
  maxBytes: number;
  /** How much of the stream is read at a time (default 1 MiB). */
  readBytes?: number;
}

/**
 * Inflates the `packedBytes` of a zlib stream that `read` hands over (it fills the buffer it
 * is given, or throws), yielding the output in parts: views of one buffer, each valid until
 * the next part is asked for. Throws an {@linkcode InflateError} when the stream is damaged
 * or cut short, which is known only at its end, after its parts went out (zlib's checksum
 * comes last), or inflates past `maxBytes`; bytes after its end are read and ignored, as
 * `inflateSync` ignores them.
 */
export function* inflateParts(
  read: (into: Uint8Array) => void,
  packedBytes: number,
  { partBytes, maxBytes, readBytes = 1 << 20 }: PartsOptions,
): Generator<Uint8Array> {
  if (!(partBytes > 0 && readBytes > 0)) throw new RangeError("parts and reads need a size");
  const inflater = newInflater();
  if (!inflater) {
    const packed = new Uint8Array(packedBytes);
    read(packed);
    const raw = oneShot(packed, maxBytes);
    for (let at = 0; at < raw.length; at += partBytes) yield raw.subarray(at, at + partBytes);
    return;
  }
  try {
    yield* inflateWith(inflater, read, packedBytes, partBytes, maxBytes, readBytes);
  } finally {
    closeContext(inflater.context);
  }
}

function* inflateWith(
  inflater: Inflater,
  read: (into: Uint8Array) => void,
  packedBytes: number,
  partBytes: number,
  maxBytes: number,
  readBytes: number,
): Generator<Uint8Array> {
  if (packedBytes === 0) throw new InflateError("unexpected end of file");
  const left = inflater.context.left;
  const input = new Uint8Array(Math.min(readBytes, packedBytes));
  const output = new Uint8Array(partBytes);
  let filled = 0;
  let total = 0;
  let ended = false;
  for (let taken = 0; taken < packedBytes;) {
    const chunk = input.subarray(0, Math.min(input.length, packedBytes - taken));
    read(chunk);
    taken += chunk.length;
    if (ended) continue;
    const flush = taken === packedBytes ? constants.Z_FINISH : constants.Z_NO_FLUSH;
    for (let at = 0;;) {
      run(inflater, flush, chunk, at, output, filled);
      if (inflater.error !== undefined) throw new InflateError(inflater.error);
      const [outputLeft, inputLeft] = left;
      total += output.length - outputLeft - filled;
      if (total > maxBytes) throw new InflateError(`it inflates past ${maxBytes} bytes`, true);
      filled = output.length - outputLeft;
      at = chunk.length - inputLeft;
      if (outputLeft === 0) {
        yield output;
        filled = 0;
        continue;
      }
      // Room left and input not taken: the stream ended (an error would have been reported).
      ended = inputLeft > 0 || flush === constants.Z_FINISH;
      break;
    }
  }
  if (filled > 0) yield output.subarray(0, filled);
}
