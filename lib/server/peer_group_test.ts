import { assertEquals } from "../../tests/support/assert.ts";
import { peerGroup } from "./peer_group.ts";

Deno.test("peerGroup: an IPv4 address is its own group", () => {
  assertEquals(peerGroup("203.0.113.7"), "203.0.113.7");
  assertEquals(peerGroup("127.0.0.2"), "127.0.0.2");
});

Deno.test("peerGroup: IPv6 addresses of one /64 are one group, of another /64 another", () => {
  const group = "2001:db8:1:2::/64";
  for (
    const host of [
      "2001:db8:1:2::1",
      "2001:db8:1:2:ffff:ffff:ffff:ffff",
      "2001:0db8:0001:0002:abcd:0:0:1",
      "2001:DB8:1:2:0:0:0:0",
      "2001:db8:1:2::",
      "2001:db8:1:2:1:2:3.4.5.6",
    ]
  ) {
    assertEquals(peerGroup(host), group, host);
  }
  assertEquals(peerGroup("2001:db8:1:3::1"), "2001:db8:1:3::/64");
  assertEquals(peerGroup("2001:db8::1"), "2001:db8::/64");
  assertEquals(peerGroup("2001:0:0:1::9"), "2001:0:0:1::/64");
  assertEquals(peerGroup("::1"), "::/64");
  assertEquals(peerGroup("fe80::1%eth0"), peerGroup("fe80::2%eth1"));
  assertEquals(peerGroup("fe80::1%eth0"), "fe80::/64");
});

Deno.test("peerGroup: an IPv4-mapped IPv6 address is the IPv4 address it maps", () => {
  assertEquals(peerGroup("::ffff:203.0.113.7"), "203.0.113.7");
  assertEquals(peerGroup("::FFFF:203.0.113.7"), "203.0.113.7");
  assertEquals(peerGroup("::ffff:cb00:7107"), "203.0.113.7");
  assertEquals(peerGroup("0:0:0:0:0:ffff:127.0.0.1"), "127.0.0.1");
  // Not mapped: another /64 of IPv6 (an IPv4-compatible address, or NAT64's prefix).
  assertEquals(peerGroup("::203.0.113.7"), "::/64");
  assertEquals(peerGroup("64:ff9b::203.0.113.7"), "64:ff9b::/64");
});

Deno.test("peerGroup: what is no IP address is its own group", () => {
  for (const host of ["", "localhost", "1:2:3", "1::2::3", "1:2:3:4:5:6:7:8:9", "::1.2.3.256"]) {
    assertEquals(peerGroup(host), host, host);
  }
});
