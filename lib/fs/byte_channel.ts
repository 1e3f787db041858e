/**
 * A one-way channel of byte messages between two threads over a SharedArrayBuffer, for a
 * reader that must stay synchronous (restore runs SQLite on its thread) while a worker reads
 * ahead. Each side blocks with `Atomics.wait` instead of polling. A message of any size
 * passes through the ring in pieces, so the ring bounds the memory between the threads.
 *
 * @module
 */

/** Control words: bytes written, bytes read, closed by the sender, cancelled by the receiver. */
const WRITTEN = 0;
const READ = 1;
const CLOSED = 2;
const CANCELLED = 3;
const CONTROL_BYTES = 16;
/**
 * The longest one wait lasts before the state is looked at again: closing and cancelling
 * change no counter, so a notify sent between a look and a wait would be missed.
 */
const WAIT_SLICE_MS = 20;

/** Thrown on the sending side once the receiver has stopped reading. */
export class ChannelCancelledError extends Error {
  constructor() {
    super("the receiver stopped reading");
    this.name = "ChannelCancelledError";
  }
}

export class ByteChannel {
  readonly #control: Int32Array;
  readonly #ring: Uint8Array;
  readonly #mask: number;

  /** Wraps a buffer made by {@linkcode ByteChannel.create}, on either thread. */
  constructor(readonly shared: SharedArrayBuffer) {
    this.#control = new Int32Array(shared, 0, CONTROL_BYTES / 4);
    this.#ring = new Uint8Array(shared, CONTROL_BYTES);
    this.#mask = this.#ring.length - 1;
  }

  /** A channel whose ring holds `capacity` bytes, a power of two. */
  static create(capacity: number): ByteChannel {
    if (capacity < 8 || (capacity & (capacity - 1)) !== 0) {
      throw new Error(`ByteChannel capacity must be a power of two, not ${capacity}`);
    }
    return new ByteChannel(new SharedArrayBuffer(CONTROL_BYTES + capacity));
  }

  /** Sends one message, made of `parts` (not joined first); blocks while the ring is full. */
  send(...parts: Uint8Array[]): void {
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, parts.reduce((sum, part) => sum + part.length, 0));
    this.#write(length);
    for (const part of parts) this.#write(part);
  }

  /** Says that no message follows. */
  close(): void {
    Atomics.store(this.#control, CLOSED, 1);
    Atomics.notify(this.#control, WRITTEN);
  }

  /**
   * The next message, or `undefined` once the sender closed the channel. Blocks while there
   * is none; throws when `timeoutMs` passes with no byte arriving.
   */
  receive(timeoutMs = Infinity): Uint8Array | undefined {
    const length = new Uint8Array(4);
    if (!this.#read(length, timeoutMs, true)) return undefined;
    const message = new Uint8Array(new DataView(length.buffer).getUint32(0));
    this.#read(message, timeoutMs, false);
    return message;
  }

  /** Tells the sender to stop: its next send throws {@linkcode ChannelCancelledError}. */
  cancel(): void {
    Atomics.store(this.#control, CANCELLED, 1);
    Atomics.notify(this.#control, READ);
  }

  #write(bytes: Uint8Array): void {
    const control = this.#control;
    for (let done = 0; done < bytes.length;) {
      if (Atomics.load(control, CANCELLED)) throw new ChannelCancelledError();
      const written = Atomics.load(control, WRITTEN);
      const read = Atomics.load(control, READ);
      const free = this.#ring.length - ((written - read) | 0);
      if (free === 0) {
        Atomics.wait(control, READ, read, WAIT_SLICE_MS);
        continue;
      }
      const at = written & this.#mask;
      const n = Math.min(free, bytes.length - done, this.#ring.length - at);
      this.#ring.set(bytes.subarray(done, done + n), at);
      done += n;
      // The store publishes the bytes set above (Atomics are sequentially consistent).
      Atomics.store(control, WRITTEN, (written + n) | 0);
      Atomics.notify(control, WRITTEN);
    }
  }

  /** Fills `out`; false when the channel closed before its first byte (if `atStart`). */
  #read(out: Uint8Array, timeoutMs: number, atStart: boolean): boolean {
    const control = this.#control;
    let waited = 0;
    for (let done = 0; done < out.length;) {
      const written = Atomics.load(control, WRITTEN);
      const read = Atomics.load(control, READ);
      const held = (written - read) | 0;
      if (held === 0) {
        if (Atomics.load(control, CLOSED)) {
          if (atStart && done === 0) return false;
          throw new Error("the sender closed the channel in the middle of a message");
        }
        if (waited >= timeoutMs) throw new Error(`no bytes arrived for ${timeoutMs} ms`);
        const slice = Math.min(WAIT_SLICE_MS, timeoutMs - waited);
        if (Atomics.wait(control, WRITTEN, written, slice) === "timed-out") waited += slice;
        continue;
      }
      waited = 0;
      const at = read & this.#mask;
      const n = Math.min(held, out.length - done, this.#ring.length - at);
      out.set(this.#ring.subarray(at, at + n), done);
      done += n;
      Atomics.store(control, READ, (read + n) | 0);
      Atomics.notify(control, READ);
    }
    return true;
  }
}
