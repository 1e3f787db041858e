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
  /**
   * Bodies waiting for room, first come first: `tried` is the most one was decoded within
   * and did not fit (-1: never tried, it queued behind others).
   */
  #queue: { need: number; tried: number; resolve: (max: number) => void }[] = [];

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
   * total) that is thrown on; else the body waits for room and is decoded again, within what
   * is left then (a body is never held back for more than it needs: one that waited its turn
   * takes its room, and the small ones behind it theirs). Any other error is thrown on,
   * nothing held. Once `signal` aborts (its connection closed), `signal.reason` is thrown and
   * nothing held: a body waiting leaves the line at once, never decoded, so it holds up none
   * behind it.
   */
  async decode<T extends { bytes: number }>(
    limit: number,
    decode: (max: number) => T,
    signal?: AbortSignal,
  ): Promise<Held<T>> {
    limit = Math.min(limit, this.total);
    let tried = -1;
    let first = true;
    for (;;) {
      let max: number;
      let reserved = 0;
      if (first && this.#queue.length === 0) {
        max = Math.min(limit, this.total - this.#held);
      } else {
        // Reserved for it once let through: what is left, up to its limit.
        max = reserved = await this.#wait(limit, tried, first, signal);
      }
      first = false;
      let value: T;
      try {
        // Aborted since its turn came: what was reserved for it goes to the others.
        signal?.throwIfAborted();
        value = decode(max);
      } catch (error) {
        this.#give(reserved);
        if (!(error instanceof InflateLimitError) || max >= limit) throw error;
        tried = max;
        continue;
      }
      this.#held += value.bytes - reserved;
      // What it did not need goes to those behind it.
      this.#pump();
      return this.#holding(value, value.bytes);
    }
  }

  /**
   * Waits in line for room, at its end the `first` time, else (tried, it keeps its place)
   * first in line; returns what was reserved for it. Leaves the line when `signal` aborts.
   */
  #wait(need: number, tried: number, first: boolean, signal?: AbortSignal): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const leave = () => {
        this.#queue.splice(this.#queue.indexOf(waiter), 1);
        reject(signal!.reason);
        // It may have been first in line, holding back those behind it.
        this.#pump();
      };
      const waiter = {
        need,
        tried,
        resolve: (max: number) => {
          signal?.removeEventListener("abort", leave);
          resolve(max);
        },
      };
      signal?.addEventListener("abort", leave, { once: true });
      if (first) this.#queue.push(waiter);
      else this.#queue.unshift(waiter);
      this.#pump();
    });
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

  /**
   * Lets waiting bodies through, first come first, each with what is left reserved for it:
   * the first in line when it all fits, or when what is left may fit it (never tried, or at
   * least twice what it was tried within: a large one is inflated a few times at most).
   */
  #pump(): void {
    while (this.#queue.length > 0) {
      const free = this.total - this.#held;
      const { need, tried } = this.#queue[0];
      const chance = tried < 0 ? free > 0 : free >= 2 * tried && free > tried;
      if (free < need && !chance) return;
      const next = this.#queue.shift()!;
      const max = Math.min(need, free);
      this.#held += max;
      next.resolve(max);
    }
  }
}
