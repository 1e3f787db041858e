import { assertEquals } from "../../tests/support/assert.ts";
import { admit, isLoopback, type Pending } from "./admission.ts";
import { peerGroup } from "./peer_group.ts";

const LIMITS = { pendingConnections: 4, pendingPerAddress: 2 };
const from = (...hosts: string[]): Pending<number>[] =>
  hosts.map((host, conn) => ({ conn, group: peerGroup(host) }));

Deno.test("admit: under the limits a connection is taken", () => {
  assertEquals(admit(from("203.0.113.1"), "203.0.113.2", LIMITS), { refuse: false });
});

Deno.test("admit: past the limit in all, the oldest pending connection makes way", () => {
  const pending = from("203.0.113.1", "203.0.113.2", "203.0.113.3", "127.0.0.1");
  assertEquals(admit(pending, "203.0.113.4", LIMITS), { refuse: false, evict: 0 });
});

Deno.test("admit: past the limit in all, the group holding the most makes way, its oldest", () => {
  const limits = { pendingConnections: 6, pendingPerAddress: 4 };
  const pending = from(
    "203.0.113.1",
    "2001:db8:1:2::1",
    "203.0.113.9",
    "2001:db8:1:2::2",
    "2001:db8:1:2::3",
    "203.0.113.9",
  );
  assertEquals(admit(pending, "203.0.113.4", limits), { refuse: false, evict: 1 });
  // A flood from loopback (a Tor onion service's peers) pushes out its own, not a node's.
  const tor = from("203.0.113.1", "127.0.0.1", "127.0.0.1", "::1", "127.0.0.1", "127.0.0.1");
  assertEquals(admit(tor, "127.0.0.1", limits), { refuse: false, evict: 1 });
  assertEquals(admit(tor, "203.0.113.2", limits), { refuse: false, evict: 1 });
});

Deno.test("admit: groups tied for the most: the new connection's counts too, then the oldest goes", () => {
  const pending = from("203.0.113.1", "203.0.113.2", "203.0.113.2", "203.0.113.1");
  assertEquals(admit(pending, "203.0.113.3", LIMITS), { refuse: false, evict: 0 });
  const three = from("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.2");
  assertEquals(admit(three, "203.0.113.3", LIMITS), { refuse: false, evict: 1 });
});

Deno.test("admit: one address past its share is turned away, and pushes no one out", () => {
  const pending = from("203.0.113.1", "203.0.113.9", "203.0.113.9", "203.0.113.2");
  assertEquals(admit(pending, "203.0.113.9", LIMITS), { refuse: true });
  // It holds the most: its oldest makes way for another's.
  assertEquals(admit(pending, "2001:db8::1", LIMITS), { refuse: false, evict: 1 });
});

Deno.test("admit: IPv6 peers of one /64 share one address's share, another /64 has its own", () => {
  const pending = from("2001:db8:1:2::1", "2001:db8:1:2:ffff::9");
  assertEquals(admit(pending, "2001:db8:1:2::3", LIMITS), { refuse: true });
  assertEquals(admit(pending, "2001:db8:1:3::1", LIMITS), { refuse: false });
});

Deno.test("admit: an IPv4-mapped IPv6 peer shares the IPv4 address's share", () => {
  const pending = from("203.0.113.9", "::ffff:203.0.113.9");
  assertEquals(admit(pending, "203.0.113.9", LIMITS), { refuse: true });
  assertEquals(admit(from("203.0.113.9", "203.0.113.9"), "::ffff:203.0.113.9", LIMITS), {
    refuse: true,
  });
});

Deno.test("admit: loopback, where a Tor onion service's peers all come from, has no share", () => {
  const pending = from("127.0.0.1", "127.0.0.1", "::1");
  assertEquals(admit(pending, "127.0.0.1", LIMITS), { refuse: false });
  assertEquals(admit([...pending, ...from("127.0.0.1")], "::1", LIMITS), {
    refuse: false,
    evict: 0,
  });
});

Deno.test("isLoopback: IPv4, IPv6 and IPv4-mapped loopback; nothing else", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]) {
    assertEquals(isLoopback(host), true, host);
  }
  for (const host of ["10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "localhost", ""]) {
    assertEquals(isLoopback(host), false, host);
  }
});
