/**
 * How patient a `socket:` backup is: every wait's bound, and how often and how long it
 * reconnects before it gives up. The defaults are the Python plugin's: 5 reconnects, 5 s
 * apart growing by 1.5 (about 66 s in all); it had no timeout, ours is 30 s a wait.
 *
 * backup.lock may set them (extra keys, which the Python plugin ignores):
 * `socket_timeout_s`, `socket_retries`, `socket_retry_delay_s`, `socket_compact_timeout_s`,
 * `socket_takeover_wait_s`.
 *
 * @module
 */
import type { LockFile } from "../../backup/lock_file.ts";
import { lockNumber, type LockNumberRule } from "../../backup/lock_number.ts";

/** How patient a `socket:` backup is (see the module's doc). */
export interface RetryPolicy {
  /** Bound on connecting, and on each wait for an answer or a send. */
  timeoutMs: number;
  /** Reconnects after a lost connection before giving up. */
  retries: number;
  /** Pause before the first reconnect; each next one is `backoff` times longer. */
  retryDelayMs: number;
  /** Factor by which each pause grows on the one before. */
  backoff: number;
  /** Bound on the wait for a server's compaction (`backup-compact`), which may take minutes. */
  compactTimeoutMs: number;
  /**
   * After this long without a write, a wire v2 connection asks where the backup stands
   * (REQ_METADATA): the server sees the node alive (one silent for long may be taken over by
   * the node's next connection), and a connection that died is found before a change needs
   * it. 0: never.
   */
  heartbeatMs: number;
  /**
   * How long a write waits while the server says another connection of the node, one that
   * heartbeats, holds the backup (ERROR `BUSY`): the node's own, left open by a host that went
   * down, which the server hands over once silent (90 s by default). Past it the write fails.
   */
  takeoverWaitMs: number;
}

/**
 * The Python plugin's reconnects (5, 5 s apart, growing by 1.5), with a 30 s bound on each wait,
 * 10 minutes for a server's compaction, a heartbeat after 30 s without a write, and 2 minutes'
 * wait for a server to hand over a backup held by the node's previous connection.
 */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  timeoutMs: 30_000,
  retries: 5,
  retryDelayMs: 5_000,
  backoff: 1.5,
  compactTimeoutMs: 600_000,
  heartbeatMs: 30_000,
  takeoverWaitMs: 120_000,
};

/** Every wait is bounded: 0 would be a wait that fails at once. */
const BOUND = { above0: "every wait is bounded" };

/** `key`'s seconds in backup.lock as milliseconds, `fallback` when it names none. */
function ms(
  lock: LockFile,
  key: string,
  fallback: number,
  rule: LockNumberRule = "seconds",
): number {
  const seconds = lockNumber(lock, key, rule);
  return seconds === undefined ? fallback : seconds * 1000;
}

/** The policy backup.lock asks for, defaults for what it does not name. */
export function retryPolicyFromLock(lock: LockFile): RetryPolicy {
  return {
    timeoutMs: ms(lock, "socket_timeout_s", DEFAULT_RETRY_POLICY.timeoutMs, BOUND),
    retries: lockNumber(lock, "socket_retries", "whole") ?? DEFAULT_RETRY_POLICY.retries,
    retryDelayMs: ms(lock, "socket_retry_delay_s", DEFAULT_RETRY_POLICY.retryDelayMs),
    backoff: DEFAULT_RETRY_POLICY.backoff,
    compactTimeoutMs: ms(
      lock,
      "socket_compact_timeout_s",
      DEFAULT_RETRY_POLICY.compactTimeoutMs,
      BOUND,
    ),
    heartbeatMs: DEFAULT_RETRY_POLICY.heartbeatMs,
    takeoverWaitMs: ms(lock, "socket_takeover_wait_s", DEFAULT_RETRY_POLICY.takeoverWaitMs),
  };
}
