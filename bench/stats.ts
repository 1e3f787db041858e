/**
 * Percentiles and small statistics for the benchmark rows.
 *
 * @module
 */

/** The `q` quantile (0..1) of `samples`, nearest rank. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return NaN;
  const sorted = Float64Array.from(samples).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(samples: readonly number[]): number {
  return quantile(samples, 0.5);
}

export interface Summary {
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samples: readonly number[]): Summary {
  let sum = 0;
  let max = -Infinity;
  for (const s of samples) {
    sum += s;
    if (s > max) max = s;
  }
  return {
    p50: quantile(samples, 0.5),
    p99: quantile(samples, 0.99),
    max,
    mean: sum / samples.length,
  };
}

export const MiB = 1024 * 1024;
