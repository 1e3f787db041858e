/**
 * The numbers backup.lock may hold beside its URL (a backend's patience: timeouts, pauses,
 * retries), each checked the one way, so that a bad one is refused in the same words
 * whichever backend reads it.
 *
 * @module
 */
import type { LockFile } from "./lock_file.ts";

/**
 * What a number must be: `seconds` (0 or more), `whole` (0 or more), or seconds `above0`, with
 * why 0 is no value (a bound of 0 would not be "no bound" but a wait that fails at once).
 */
export type LockNumberRule = "seconds" | "whole" | { above0: string };

/**
 * The most a number of seconds may be: a timer set longer fires at once (setTimeout holds at
 * most 2^31 - 1 ms), so a wait meant as "all but unbounded" would fail every time.
 */
export const MAX_LOCK_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** `key`'s number in `lock`, `undefined` when it is not there; one that breaks `rule` is refused. */
export function lockNumber(lock: LockFile, key: string, rule: LockNumberRule): number | undefined {
  const value = lock[key];
  if (value === undefined) return undefined;
  const above0 = typeof rule === "object";
  if (
    typeof value !== "number" || !Number.isFinite(value) || !(above0 ? value > 0 : value >= 0) ||
    (rule === "whole" && !Number.isInteger(value))
  ) {
    const what = rule === "whole"
      ? "a whole number"
      : above0
      ? `a number of seconds above 0${rule.above0 === "" ? "" : ` (${rule.above0})`}`
      : "a number of seconds";
    throw new Error(
      `Cannot start backup: "${key}" in backup.lock must be ${what}, not ` +
        `${JSON.stringify(value)}: fix or remove it`,
    );
  }
  if (rule !== "whole" && value > MAX_LOCK_SECONDS) {
    throw new Error(
      `Cannot start backup: "${key}" in backup.lock must be at most ${MAX_LOCK_SECONDS} ` +
        `seconds (about 24 days: a timer set longer fires at once), not ${value}: fix or ` +
        `remove it`,
    );
  }
  return value;
}
