/**
 * When crash trials kill what: one kill, sometimes two, at random moments of a trial.
 *
 * @module
 */
import { prng } from "./prng.ts";

export interface Kill<V> {
  atMs: number;
  victim: V;
  /** How long a killed server stays down. */
  pauseMs: number;
}

/**
 * Kill moments for trial `seed`: one, sometimes (3 in 10) two, from 30 ms to `windowMs`
 * after it starts, each of `victims` as likely; a killed server stays down up to
 * `maxPauseMs`. In time order.
 */
export function killPlan<V>(
  seed: number,
  windowMs: number,
  victims: readonly V[],
  maxPauseMs: number,
): Kill<V>[] {
  const random = prng(seed);
  const kill = () => ({
    atMs: 30 + Math.floor(random() * windowMs),
    victim: victims[Math.floor(random() * victims.length)],
    pauseMs: Math.floor(random() * maxPauseMs),
  });
  const kills = [kill()];
  if (random() < 0.3) kills.push(kill());
  return kills.sort((a, b) => a.atMs - b.atMs);
}
