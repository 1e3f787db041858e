import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { npmFirstUse } from "./npm_first_use.ts";

Deno.test("npmFirstUse names a package Deno could not fetch, and what to do, in one line", async () => {
  const failed = new TypeError(
    'Failed loading https://registry.npmjs.org/aws4fetch for package "aws4fetch"\n' +
      "    0: Permission denied (os error 13)\n    at file:///x/sigv4.ts:9:29",
  );
  const error = await assertRejects(() => npmFirstUse(Promise.reject(failed), "aws4fetch"));
  assertEquals(
    error.message,
    "the npm package aws4fetch, which Deno fetches on first use, is not in this user's Deno " +
      "cache and could not be fetched (Permission denied (os error 13)): run this once as this " +
      "user where the npm registry is reachable, or set DENO_DIR to a Deno cache that holds it",
  );
  assertEquals(error.constructor, Error);
});

Deno.test("npmFirstUse passes other errors, and the module, through", async () => {
  const bug = new TypeError("x is not a function");
  assertEquals(await assertRejects(() => npmFirstUse(Promise.reject(bug), "aws4fetch")), bug);
  assertEquals(await npmFirstUse(Promise.resolve(7), "aws4fetch"), 7);
});
