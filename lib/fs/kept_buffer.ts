/**
 * One buffer that a reader reuses from message to message (or payload to payload) instead of
 * a new one each: a restore passes each 1 MiB snapshot part on before it reads the next, and
 * new buffers wait for V8's collector, tens of MiB at a time. Each view it hands out holds
 * until the next is asked for.
 *
 * @module
 */

/** A buffer of at least `size` bytes, reused from call to call by a reader. */
export type ReusedBuffer = (size: number) => Uint8Array;

/** Sizes larger than this get a buffer of their own, not kept for the rest of a read. */
const KEPT_BYTES = 4 << 20;

/** One buffer, grown to the largest size asked up to 4 MiB; larger ones are new each time. */
export class KeptBuffer {
  #bytes = new Uint8Array(0);

  /** A buffer of at least `size` bytes. */
  readonly for: ReusedBuffer = (size) => {
    if (size > KEPT_BYTES) return new Uint8Array(size);
    if (this.#bytes.length < size) this.#bytes = new Uint8Array(size);
    return this.#bytes;
  };
}
