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
  assertEquals(budget.held, 50);
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
