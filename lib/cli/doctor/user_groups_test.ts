import { assertEquals } from "../../../tests/support/assert.ts";
import { groupsIn } from "./user_groups.ts";

const PASSWD = [
  "root:x:0:0:root:/root:/bin/bash",
  "lightning:x:4242:4242::/home/lightning:/bin/sh",
  "other:x:4343:4343::/home/other:/bin/sh",
].join("\n");

const GROUP = [
  "root:x:0:",
  "lightning:x:4242:",
  "backup:x:4500:other,lightning",
  "lightningish:x:4600:lightningd",
  "broken:x::lightning",
].join("\n");

Deno.test("groupsIn gives a user's primary group and those that list it", () => {
  assertEquals(groupsIn(PASSWD, GROUP, 4242), [4242, 4500]);
  assertEquals(groupsIn(PASSWD, GROUP, 4343), [4343, 4500]);
  assertEquals(groupsIn(PASSWD, GROUP, 0), [0]);
});

Deno.test("groupsIn gives none for a user without an entry", () => {
  assertEquals(groupsIn(PASSWD, GROUP, 9999), []);
  assertEquals(groupsIn("", GROUP, 4242), []);
});
