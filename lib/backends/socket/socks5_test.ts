import { assertEquals } from "../../../tests/support/assert.ts";
import { encodeAddress } from "./socks5.ts";

Deno.test("SOCKS5 addresses: IPv4 as type 1, IPv6 as type 4, any name unresolved as type 3", () => {
  assertEquals(encodeAddress("127.0.0.1"), Uint8Array.of(1, 127, 0, 0, 1));
  assertEquals(encodeAddress("::1"), Uint8Array.of(4, ...Array(15).fill(0), 1));
  assertEquals(
    encodeAddress("2001:db8::8:1").subarray(0, 5),
    Uint8Array.of(4, 0x20, 0x01, 0x0d, 0xb8),
  );
  const onion = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion";
  assertEquals(
    encodeAddress(onion),
    Uint8Array.of(3, onion.length, ...new TextEncoder().encode(onion)),
  );
  // A dotted name that is no IPv4 address stays a name.
  assertEquals(encodeAddress("300.1.1.1")[0], 3);
});
