/**
 * A one-way channel of byte messages between two threads over a SharedArrayBuffer, for a
 * reader that must stay synchronous (restore runs SQLite on its thread) while a worker reads
 * ahead. Each side blocks with `Atomics.wait` instead of polling. A message of any size
 * passes through the ring in pieces, so the ring bounds the memory between the threads.
 *
 * @module
 */
import { KeptBuffer } from "./kept_buffer.ts";

/**
 * Control words: bytes written, bytes read, closed by the sender, cancelled by the receiver,
 * the wait slice in ms, and the sender waiting on a full ring.
 */
const WRITTEN = 0;
const READ = 1;
const CLOSED = 2;
const CANCELLED = 3;
const SLICE = 4;
const SENDER_WAITS = 5;
const CONTROL_BYTES = 32;
/**
 * The longest one wait lasts before the state is looked at again: closing and cancelling
 * change no counter, so a notify sent between a look and a wait would be missed.
 */
const WAIT_SLICE_MS = 20;
/**
 * The reader wakes a sender waiting on a full ring once this share of the ring is free (one
 * quarter), not at each read: waking it for each message made two futex calls a message on
 * the reader's thread, measured at a sixth of a restore's time.
 */
const WAKE_SHARE = 4;

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
  readonly #wakeAt: number;
  readonly #slice: number;
  /** A message's length field, sent or received. */
  readonly #length = new Uint8Array(4);
  readonly #lengthView = new DataView(this.#length.buffer);
  /** What {@linkcode receive} reads into. */
  readonly #message = new KeptBuffer();

  /** Wraps a buffer made by {@linkcode ByteChannel.create}, on either thread. */
  constructor(readonly shared: SharedArrayBuffer) {
    this.#control = new Int32Array(shared, 0, CONTROL_BYTES / 4);
    this.#ring = new Uint8Array(shared, CONTROL_BYTES);
    this.#mask = this.#ring.length - 1;
    this.#wakeAt = this.#ring.length / WAKE_SHARE;
    this.#slice = Atomics.load(this.#control, SLICE);
  }

  /**
   * A channel whose ring holds `capacity` bytes, a power of two. `waitSliceMs` is for tests:
   * a long one turns a missed wake into a hang instead of a delay.
   */
  static create(capacity: number, waitSliceMs = WAIT_SLICE_MS): ByteChannel {
    if (capacity < 8 || (capacity & (capacity - 1)) !== 0) {
      throw new Error(`ByteChannel capacity must be a power of two, not ${capacity}`);
    }
    const shared = new SharedArrayBuffer(CONTROL_BYTES + capacity);
    Atomics.store(new Int32Array(shared, 0, CONTROL_BYTES / 4), SLICE, waitSliceMs);
    return new ByteChannel(shared);
  }

  /** Sends one message, made of `parts` (not joined first); blocks while the ring is full. */
  send(...parts: Uint8Array[]): void {
    this.#lengthView.setUint32(0, parts.reduce((sum, part) => sum + part.length, 0));
    this.#write(this.#length);
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
   *
   * The message is a view of a buffer that the next `receive` reuses: a restore writes each
   * 1 MiB snapshot part out before it reads the next, and a new buffer per message left tens
   * of MiB for the collector at a time. Copy a message to keep it. A message over 4 MiB gets
   * a buffer of its own, so that one large change is not held for the rest of the read.
   */
  receive(timeoutMs = Infinity): Uint8Array | undefined {
    if (!this.#read(this.#length, timeoutMs, true)) return undefined;
    const length = this.#lengthView.getUint32(0);
    const message = this.#message.for(length).subarray(0, length);
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
        // Said before the last look: a reader that moves after it sees this and wakes us.
        Atomics.store(control, SENDER_WAITS, 1);
        const last = Atomics.load(control, READ);
        if (last === read) Atomics.wait(control, READ, read, this.#slice);
        Atomics.store(control, SENDER_WAITS, 0);
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

  /** Wakes the waiting sender once enough of the ring is free (its writes have stopped). */
  #wakeSender(read: number): void {
    const free = this.#ring.length - ((Atomics.load(this.#control, WRITTEN) - read) | 0);
    if (free < this.#wakeAt) return;
    Atomics.store(this.#control, SENDER_WAITS, 0);
    Atomics.notify(this.#control, READ);
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
        const slice = Math.min(this.#slice, timeoutMs - waited);
        if (Atomics.wait(control, WRITTEN, written, slice) === "timed-out") waited += slice;
        continue;
      }
      waited = 0;
      const at = read & this.#mask;
      const n = Math.min(held, out.length - done, this.#ring.length - at);
      out.set(this.#ring.subarray(at, at + n), done);
      done += n;
      Atomics.store(control, READ, (read + n) | 0);
      if (Atomics.load(control, SENDER_WAITS)) this.#wakeSender(read + n);
    }
    return true;
  }
}
