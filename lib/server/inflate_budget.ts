/**
 * The bytes of CHANGE bodies the server holds inflated at once, all connections together. A
 * CHANGE is inflated whole on the main thread, then held (as bytes, then as statements) until
 * it is stored and synced: without a bound, a few connections each sending a small packet that
 * inflates to hundreds of MiB would take the server's memory and stall every node's ACKs.
 *
 * A body is inflated within what is left of the budget; one that needs more waits, first in
 * line, until what it may take at most is free, and is then inflated again. Small changes (all
 * of lightningd's but the rare large one) never wait while the budget is mostly free.
 *
 * @module
 */
import { InflateLimitError } from "../wire/packets.ts";

/** A decoded body held against the budget until `release`. */
export interface Held<T> {
  /** The decoded body, until `release`. */
  value: T;
  /**
   * Gives its bytes back (once; a second call does nothing), and drops `value`. Call it as
   * soon as the body is stored or refused, before anything is sent to the peer: a peer that
   * stops reading must not keep the bytes from every other connection.
   */
  release(): void;
}

/** The budget itself: each connection's CHANGE body is decoded through `decode`. */
export class InflateBudget {
  #held = 0;
  #queue: { need: number; resolve: () => void }[] = [];

  /** `total`: the most bytes held at once. */
  constructor(readonly total: number) {}

  /** The bytes held (and reserved for the one let through) now. */
  get held(): number {
    return this.#held;
  }

  /** How many are waiting for room. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * `decode(max)`, its `bytes` held until released. `decode` throws an
   * {@linkcode InflateLimitError} for a body past `max`: past `limit` (capped at the budget's
   * total) that is thrown on; else the body waits for room and is decoded again within
   * `limit`. Any other error is thrown on, nothing held.
   */
  async decode<T extends { bytes: number }>(
    limit: number,
    decode: (max: number) => T,
  ): Promise<Held<T>> {
    limit = Math.min(limit, this.total);
    if (this.#queue.length === 0) {
      const max = Math.min(limit, this.total - this.#held);
      try {
        const value = decode(max);
        this.#held += value.bytes;
        return this.#holding(value, value.bytes);
      } catch (error) {
        if (!(error instanceof InflateLimitError) || max >= limit) throw error;
      }
    }
    // Reserved for it once let through: what it may inflate to at most.
    await new Promise<void>((resolve) => {
      this.#queue.push({ need: limit, resolve });
      this.#pump();
    });
    let value: T;
    try {
      value = decode(limit);
    } catch (error) {
      this.#give(limit);
      throw error;
    }
    this.#give(limit - value.bytes);
    return this.#holding(value, value.bytes);
  }

  #holding<T>(value: T, bytes: number): Held<T> {
    let held = true;
    const holding: Held<T> = {
      value,
      release: () => {
        if (!held) return;
        held = false;
        // Given back, it is no longer held here either: the bytes may go.
        holding.value = undefined as T;
        this.#give(bytes);
      },
    };
    return holding;
  }

  #give(bytes: number): void {
    this.#held -= bytes;
    this.#pump();
  }

  /** Lets waiting bodies through, first come first, while the first one's need is free. */
  #pump(): void {
    while (this.#queue.length > 0 && this.total - this.#held >= this.#queue[0].need) {
      const next = this.#queue.shift()!;
      this.#held += next.need;
      next.resolve();
    }
  }
}
