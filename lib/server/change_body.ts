/**
 * A CHANGE's body inflated as the server may afford it (wire v1 and v2 alike): within the
 * budget all connections share (inflate_budget.ts), no further than a record holds, and no
 * further than the backup's quota leaves room for.
 *
 * @module
 */
import { InflateLimitError } from "../wire/packets.ts";
import type { Held, InflateBudget } from "./inflate_budget.ts";
import { mostChangeBytes } from "./storage.ts";

/** What of the server a CHANGE's body is inflated within. */
export interface ChangeBodyLimits {
  /** The most a CHANGE's statements may inflate to. */
  maxChangeBytes: number;
  /** CHANGE bodies held inflated, all connections together. */
  inflating: InflateBudget;
  /** The bytes a backup may hold (`--quota-bytes`). */
  limits: { quotaBytes: number | undefined };
}

/** The answer for a body that would take its backup past its quota. */
export const OVER_QUOTA = Symbol("over quota");

/**
 * The body `decode` inflates (within the `max` bytes it is given), held in the budget until
 * released; {@linkcode OVER_QUOTA} when it would not fit in what the quota leaves of a backup
 * holding `heldBytes`. Once `closed` aborts (its connection closed), its reason is thrown,
 * nothing held: a change still waiting for room is never inflated.
 */
export async function inflateChangeBody<T extends { bytes: number }>(
  host: ChangeBodyLimits,
  heldBytes: number,
  decode: (max: number) => T,
  closed: AbortSignal,
): Promise<Held<T> | typeof OVER_QUOTA> {
  const quota = host.limits.quotaBytes;
  const room = quota === undefined ? Infinity : quota - heldBytes - mostChangeBytes(0);
  try {
    return await host.inflating.decode(Math.min(host.maxChangeBytes, room), decode, closed);
  } catch (error) {
    if (!(error instanceof InflateLimitError) || room >= host.maxChangeBytes) throw error;
    return OVER_QUOTA;
  }
}
