/**
 * How patient an S3 backup is: each request waits at most `timeoutMs`, and a request that
 * failed in a way that can pass (no answer, a 5xx, 503 SlowDown, 429, a 409 for a write of
 * the same object under way) is tried again up to `retries` times, after pauses growing by
 * `backoff`. With the defaults a change gives up after about 6 tries over at most about
 * 70 s; then the node stops without committing it.
 * backup.lock may set them: `s3_timeout_s`, `s3_retries`, `s3_retry_delay_s`.
 *
 * @module
 */
import { S3Error } from "./client.ts";
import type { LockFile } from "../../backup/lock_file.ts";
import { lockNumber } from "../../backup/lock_number.ts";
import { pause, unlessStopping } from "../stopping.ts";

/** How patient an S3 backup's requests are (see the module's doc). */
export interface S3RetryPolicy {
  /** Bound on each request, in milliseconds. */
  timeoutMs: number;
  /** Tries after the first, for a failure that can pass, before the request gives up. */
  retries: number;
  /** Pause before the first retry; each next one is `backoff` times longer. */
  retryDelayMs: number;
  /** Factor by which each pause grows on the one before. */
  backoff: number;
}

export const DEFAULT_S3_POLICY: S3RetryPolicy = {
  timeoutMs: 10_000,
  retries: 5,
  retryDelayMs: 200,
  backoff: 2,
};

/** Every request is bounded: 0 would be a request that fails at once. */
const BOUND = { above0: "every request is bounded" };

/** The policy backup.lock asks for, defaults for what it does not name. */
export function s3PolicyFromLock(lock: LockFile): S3RetryPolicy {
  const d = DEFAULT_S3_POLICY;
  return {
    timeoutMs: (lockNumber(lock, "s3_timeout_s", BOUND) ?? d.timeoutMs / 1000) * 1000,
    retries: lockNumber(lock, "s3_retries", "whole") ?? d.retries,
    retryDelayMs: (lockNumber(lock, "s3_retry_delay_s", "seconds") ?? d.retryDelayMs / 1000) * 1000,
    backoff: d.backoff,
  };
}

/** Where an S3 backup's log lines go, at lightningd's log levels. */
export type S3Log = (level: "info" | "unusual" | "broken", message: string) => void;

/** How a retried request waits: its pauses, and the plugin's lifetime that ends them. */
export interface RetryWaits {
  /** Waits `ms` milliseconds between tries (a timer unless given; tests need not wait). */
  sleep?: (ms: number) => Promise<void>;
  /** The plugin's lifetime (see stopping.ts): once it aborts, the tries and pauses end. */
  signal?: AbortSignal;
}

/**
 * Runs `attempt` (given its number, from 0) until it succeeds, a non-transient error, or
 * the retries are spent; each retry is logged.
 */
export async function retrying<T>(
  what: string,
  policy: S3RetryPolicy,
  log: S3Log,
  attempt: (n: number) => Promise<T>,
  { signal, sleep = (ms) => pause(ms, signal) }: RetryWaits = {},
): Promise<T> {
  let delay = policy.retryDelayMs;
  for (let n = 0;; n++) {
    try {
      return await unlessStopping(attempt(n), signal);
    } catch (error) {
      if (!(error instanceof S3Error) || !error.transient) throw error;
      if (n === policy.retries) {
        throw new S3Error(
          `${error.message}; ${what} gave up after ${n + 1} tries: check that S3 is reachable ` +
            `and answers`,
          error.status,
          error.code,
          false,
        );
      }
      log("unusual", `${error.message}; trying ${what} again (${n + 1} of ${policy.retries})`);
      await unlessStopping(sleep(delay), signal);
      delay *= policy.backoff;
    }
  }
}
