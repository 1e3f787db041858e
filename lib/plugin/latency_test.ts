import { LatencyWindow } from "./latency.ts";
import { assertEquals } from "../../tests/support/assert.ts";

Deno.test("LatencyWindow: empty has no last sample and no quantile", () => {
  const window = new LatencyWindow(4);
  assertEquals(window.last, undefined);
  assertEquals(window.quantile(0.99), undefined);
  assertEquals(window.quantile(0), undefined);
});

Deno.test("LatencyWindow: last is the newest sample", () => {
  const window = new LatencyWindow(4);
  window.add(3);
  assertEquals(window.last, 3);
  window.add(0.25);
  assertEquals(window.last, 0.25);
});

Deno.test("LatencyWindow: quantiles sort numerically, not as text", () => {
  const window = new LatencyWindow(16);
  for (const ms of [10, 9, 100, 2, 1000, 30]) window.add(ms);
  assertEquals(window.quantile(0), 2);
  assertEquals(window.quantile(0.5), 10);
  assertEquals(window.quantile(0.99), 1000);
  assertEquals(window.quantile(1), 1000);
  // Asking does not reorder the window: last is still the newest.
  assertEquals(window.last, 30);
});

Deno.test("LatencyWindow: p99 of 100 samples is the 99th smallest", () => {
  const window = new LatencyWindow(128);
  for (let ms = 100; ms >= 1; ms--) window.add(ms);
  assertEquals(window.quantile(0.99), 99);
  assertEquals(window.quantile(0.5), 50);
  assertEquals(window.quantile(0.01), 1);
});

Deno.test("LatencyWindow: keeps only the newest samples once full", () => {
  const window = new LatencyWindow(4);
  for (const ms of [500, 400, 1, 2, 3, 4]) window.add(ms);
  assertEquals(window.last, 4);
  // 500 and 400 fell out of the window.
  assertEquals(window.quantile(1), 4);
  assertEquals(window.quantile(0), 1);
  for (let i = 0; i < 1000; i++) window.add(7);
  assertEquals(window.quantile(0), 7);
  assertEquals(window.quantile(1), 7);
  assertEquals(window.last, 7);
});
