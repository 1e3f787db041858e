/**
 * Which connections a server keeps while they have not finished a handshake: what they hold
 * (a socket, a read buffer) stays bounded, and no one peer can keep the nodes out.
 *
 * - Past `pendingConnections` in all, the oldest pending one is closed for the new one:
 *   turning the new one away would let one peer that holds the limit's worth, idle, keep every
 *   node out.
 * - One address may hold `pendingPerAddress` of them; past that, its new one is turned away,
 *   so it cannot push out others' handshakes either. An address here is a peer group
 *   (peer_group.ts): an IPv6 peer's /64, not its address, of which it has 2^64. Not a loopback
 *   address: every peer of a Tor onion service or a local proxy has it.
 *
 * @module
 */

import { peerGroup } from "./peer_group.ts";

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/** Whether `host` is a loopback address (as Deno names a peer's). */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

export interface PendingLimits {
  /** Connections that have not finished a handshake, all peers together. */
  pendingConnections: number;
  /** Of those, from one address that is not loopback. */
  pendingPerAddress: number;
}

/** A connection awaiting its handshake, oldest first in the lists given to {@linkcode admit}. */
export interface Pending<C> {
  conn: C;
  /** Its peer's {@linkcode peerGroup}. */
  group: string;
}

/**
 * What to do with a new connection from `host`, given those `pending` (oldest first):
 * `refuse` it, or take it, closing `evict` first when given.
 */
export function admit<C>(
  pending: readonly Pending<C>[],
  host: string,
  limits: PendingLimits,
): { refuse: true } | { refuse: false; evict?: C } {
  if (!isLoopback(host)) {
    const group = peerGroup(host);
    const fromGroup = pending.filter((p) => p.group === group).length;
    if (fromGroup >= limits.pendingPerAddress) return { refuse: true };
  }
  if (pending.length < limits.pendingConnections) return { refuse: false };
  return { refuse: false, evict: pending[0].conn };
}
