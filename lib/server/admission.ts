/**
 * Which connections a server keeps while they have not finished a handshake: what they hold
 * (a socket, a read buffer) stays bounded, and no one peer can keep the nodes out.
 *
 * - Past `pendingConnections` in all, one pending connection is closed for the new one:
 *   turning the new one away would let one peer that holds the limit's worth, idle, keep every
 *   node out. It is the oldest of the group (peer_group.ts) that holds the most of them, the
 *   new one counted: a flood from one address pushes out its own connections, not a node's
 *   handshake from elsewhere, as closing the oldest of all did. Groups tied for the most: the
 *   oldest of theirs.
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
  return { refuse: false, evict: oldestOfLargest(pending, peerGroup(host)) };
}

/** The oldest of `pending` in the group holding the most, a new one from `group` counted. */
function oldestOfLargest<C>(pending: readonly Pending<C>[], group: string): C {
  const counts = new Map<string, number>([[group, 1]]);
  for (const p of pending) counts.set(p.group, (counts.get(p.group) ?? 0) + 1);
  const most = Math.max(...counts.values());
  // None when the new one's group alone holds the most with none pending: only with a limit
  // of 0 or 1, where any will do.
  return (pending.find((p) => counts.get(p.group) === most) ?? pending[0]).conn;
}
