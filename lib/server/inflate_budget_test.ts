import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { InflateBudget } from "./inflate_budget.ts";
import { InflateLimitError, WireError } from "../wire/packets.ts";

/** A decoder of a body that inflates to `size` bytes, counting its runs in `runs`. */
function body(size: number, runs: number[] = []) {
  return (max: number) => {
    runs.push(max);
    if (size > max) throw new InflateLimitError(`${size} over ${max}`, max);
    return { bytes: size };
  };
}

Deno.test("bodies within the budget are held at once, and their bytes given back on release", async () => {
  const budget = new InflateBudget(100);
  const a = await budget.decode(100, body(30));
  const b = await budget.decode(100, body(40));
  assertEquals(budget.held, 70);
  a.release();
  a.release();
  assertEquals(budget.held, 40);
  b.release();
  assertEquals(budget.held, 0);
});

Deno.test("a body past what is left of the budget waits until it fits, then is decoded again", async () => {
  const budget = new InflateBudget(100);
  const first = await budget.decode(100, body(80));
  const runs: number[] = [];
  let done = false;
  const second = budget.decode(100, body(50, runs)).then((held) => {
    done = true;
    return held;
  });
  await new Promise((r) => setTimeout(r, 10));
  assertEquals([done, runs], [false, [20]]);
  // Meanwhile a small one waits behind it: first come, first served.
  const third = budget.decode(100, body(1));
  first.release();
  const held = await second;
  assertEquals(runs, [20, 100]);
  // The small one went in beside it.
  assertEquals(budget.held, 51);
  held.release();
  (await third).release();
  assertEquals(budget.held, 0);
});

Deno.test("a body past its own limit, or broken, is thrown on and holds nothing", async () => {
  const budget = new InflateBudget(100);
  assert(await assertRejects(() => budget.decode(60, body(61))) instanceof InflateLimitError);
  // Capped at the budget's total.
  assert(await assertRejects(() => budget.decode(1000, body(101))) instanceof InflateLimitError);
  const damaged = () => {
    throw new WireError("damaged");
  };
  assert(await assertRejects(() => budget.decode(100, damaged)) instanceof WireError);
  // One that waited for room and is still too large gives its reservation back.
  const other = await budget.decode(100, body(90));
  const waited = assertRejects(() => budget.decode(100, body(101)));
  other.release();
  assert(await waited instanceof InflateLimitError);
  assertEquals([budget.held, budget.waiting], [0, 0]);
});

Deno.test("once a large body has waited its turn, a small one behind it goes in beside it, not after it is released", async () => {
  const budget = new InflateBudget(100);
  const first = await budget.decode(100, body(90));
  const large = budget.decode(100, body(50));
  // One byte: it would fit beside the large one once the first is released.
  let small = false;
  const behind = budget.decode(100, body(1)).then((held) => {
    small = true;
    return held;
  });
  first.release();
  const held = await large;
  await new Promise((r) => setTimeout(r, 20));
  // 50 of 100 held: the small one must not wait until the large one is stored and synced
  // (every change of every node would go one at a time, one fsync each, while any waits).
  assertEquals([budget.held, small], [51, true]);
  held.release();
  (await behind).release();
});

Deno.test("a large body that waits is tried again only once what is left may fit it, and goes in", async () => {
  const budget = new InflateBudget(100);
  const holders = await Promise.all(
    [10, 10, 10, 10, 10, 10, 10, 10, 10].map((n) => budget.decode(100, body(n))),
  );
  const runs: number[] = [];
  const large = budget.decode(100, body(60, runs));
  // Released one at a time, a turn apart: tried within 10, then 20 (twice that), then 40,
  // then 80, not at each release.
  for (const held of holders) {
    held.release();
    await new Promise((r) => setTimeout(r, 0));
  }
  const held = await large;
  assertEquals(runs, [10, 20, 40, 80]);
  assertEquals([budget.held, budget.waiting], [60, 0]);
  held.release();
  assertEquals(budget.held, 0);
});

Deno.test("a body waiting for room whose signal aborts leaves the line at once: never decoded again, nothing held, and those behind it go ahead", async () => {
  const budget = new InflateBudget(100);
  const other = await budget.decode(100, body(95));
  const closing = new AbortController();
  const runs: number[] = [];
  // Tried within the 5 left, it waits first in line for 10; the small one behind it for it.
  const large = assertRejects(() => budget.decode(100, body(50, runs), closing.signal));
  const small = budget.decode(100, body(1));
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(budget.waiting, 2);
  closing.abort();
  assert(await large === closing.signal.reason);
  (await small).release();
  assertEquals([runs, budget.held, budget.waiting], [[5], 95, 0]);
  // One aborted already does not wait at all.
  assert(
    await assertRejects(() => budget.decode(100, body(1), closing.signal)) ===
      closing.signal.reason,
  );
  other.release();
  assertEquals(budget.held, 0);
});

Deno.test("a body whose signal aborts once its turn came, before it is decoded, gives its room back", async () => {
  const budget = new InflateBudget(100);
  const other = await budget.decode(100, body(100));
  const closing = new AbortController();
  const runs: number[] = [];
  const waiting = assertRejects(() => budget.decode(100, body(50, runs), closing.signal));
  await new Promise((r) => setTimeout(r, 10));
  // Let through with the whole budget reserved, then aborted before it runs again.
  other.release();
  closing.abort();
  assert(await waiting === closing.signal.reason);
  assertEquals([runs, budget.held, budget.waiting], [[0], 0, 0]);
});
