/**
 * Hook latencies, kept in a fixed ring so the plugin's memory does not grow with uptime.
 *
 * @module
 */

export class LatencyWindow {
  #samples: Float64Array;
  #count = 0;

  constructor(size = 4096) {
    this.#samples = new Float64Array(size);
  }

  add(milliseconds: number): void {
    this.#samples[this.#count % this.#samples.length] = milliseconds;
    this.#count++;
  }

  get last(): number | undefined {
    return this.#count === 0 ? undefined : this.#samples[(this.#count - 1) % this.#samples.length];
  }

  /** The `q` quantile (0..1) of the samples in the window. */
  quantile(q: number): number | undefined {
    const n = Math.min(this.#count, this.#samples.length);
    if (n === 0) return undefined;
    const sorted = this.#samples.slice(0, n).sort();
    return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
  }
}
