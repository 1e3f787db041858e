import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { DEFAULT_RETRY_POLICY, retryPolicyFromLock } from "./options.ts";

Deno.test("backup.lock's socket keys set the patience; the defaults are the Python plugin's", async () => {
  assertEquals(retryPolicyFromLock({ backend_url: "socket:h:1" }), DEFAULT_RETRY_POLICY);
  assertEquals(DEFAULT_RETRY_POLICY.retries, 5);
  assertEquals(
    retryPolicyFromLock({
      backend_url: "socket:h:1",
      socket_timeout_s: 2.5,
      socket_retries: 0,
      socket_retry_delay_s: 0.1,
      socket_compact_timeout_s: 90,
      socket_takeover_wait_s: 200,
    }),
    {
      timeoutMs: 2500,
      retries: 0,
      retryDelayMs: 100,
      backoff: 1.5,
      compactTimeoutMs: 90_000,
      heartbeatMs: 30_000,
      takeoverWaitMs: 200_000,
    },
  );
  await assertRejects(
    () => retryPolicyFromLock({ backend_url: "socket:h:1", socket_timeout_s: "10" }),
    /"socket_timeout_s" in backup.lock must be a number of seconds above 0 \(every wait is bounded\), not "10": fix or remove it/,
  );
  // 0 would not mean "no bound" but a wait that fails at once.
  await assertRejects(
    () => retryPolicyFromLock({ backend_url: "socket:h:1", socket_timeout_s: 0 }),
    /"socket_timeout_s" in backup.lock must be a number of seconds above 0/,
  );
  await assertRejects(
    () => retryPolicyFromLock({ backend_url: "socket:h:1", socket_compact_timeout_s: 0 }),
    /"socket_compact_timeout_s" in backup.lock must be a number of seconds above 0/,
  );
  assertEquals(
    retryPolicyFromLock({ backend_url: "socket:h:1", socket_retry_delay_s: 0 }).retryDelayMs,
    0,
  );
  // Past a timer's 2^31 - 1 ms, every wait would time out at once.
  await assertRejects(
    () => retryPolicyFromLock({ backend_url: "socket:h:1", socket_timeout_s: 1e9 }),
    /"socket_timeout_s" in backup.lock must be at most 2147483 seconds \(about 24 days: a timer set longer fires at once\), not 1000000000: fix or remove it/,
  );
  assertEquals(
    retryPolicyFromLock({ backend_url: "socket:h:1", socket_timeout_s: 2147483 }).timeoutMs,
    2147483000,
  );
  await assertRejects(
    () => retryPolicyFromLock({ backend_url: "socket:h:1", socket_retries: 1.5 }),
    /"socket_retries" in backup.lock must be a whole number, not 1.5/,
  );
});
