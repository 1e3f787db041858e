/**
 * Which peers the server's admission limits (admission.ts) and its count of failed
 * authentications take for one: an IPv4 peer by its address, an IPv6 peer by its /64, which
 * one subscriber or one rented server is commonly given whole (counted by address, it would
 * have 2^64 of them, and no limit would bite). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
 * an IPv4 peer of a dual-stack socket) is the IPv4 address it maps.
 *
 * @module
 */

const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const DOTTED_TAIL = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The 16-bit groups of `part`, some of an IPv6 address's between colons. */
function hexGroups(part: string): number[] | undefined {
  if (part === "") return [];
  const groups: number[] = [];
  for (const group of part.split(":")) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
    groups.push(parseInt(group, 16));
  }
  return groups;
}

/** `host`'s eight 16-bit groups, or `undefined` when it is not an IPv6 address. */
function ipv6Groups(host: string): number[] | undefined {
  // A link-local address's zone ("fe80::1%eth0") names an interface, not the peer.
  let text = host.replace(/%.*$/, "");
  let tail: number[] = [];
  const dotted = DOTTED_TAIL.exec(text);
  if (dotted) {
    const bytes = dotted.slice(2).map(Number);
    if (bytes.some((byte) => byte > 255)) return undefined;
    tail = [(bytes[0] << 8) | bytes[1], (bytes[2] << 8) | bytes[3]];
    text = dotted[1].endsWith("::") ? dotted[1] : dotted[1].slice(0, -1);
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = hexGroups(halves[0]);
  const rest = hexGroups(halves[1] ?? "");
  if (!head || !rest) return undefined;
  const known = head.length + rest.length + tail.length;
  if (halves.length === 1) return known === 8 ? [...head, ...tail] : undefined;
  if (known > 7) return undefined;
  return [...head, ...new Array<number>(8 - known).fill(0), ...rest, ...tail];
}

/**
 * The group `host` (a peer's address as Deno gives it) counts in: an IPv4 address as it is,
 * an IPv6 one as its /64 (`2001:db8:1:2::/64`), an IPv4-mapped one as the IPv4 address.
 * Anything else (no IP address) is its own group.
 */
export function peerGroup(host: string): string {
  if (IPV4.test(host)) return host;
  const groups = ipv6Groups(host);
  if (!groups) return host;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6] >> 8, groups[6] & 0xff, groups[7] >> 8, groups[7] & 0xff].join(".");
  }
  const prefix = groups.slice(0, 4).map((g) => g.toString(16));
  while (prefix.at(-1) === "0") prefix.pop();
  return `${prefix.join(":")}::/64`;
}
