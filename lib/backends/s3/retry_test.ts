import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { S3Error } from "./client.ts";
import { DEFAULT_S3_POLICY, retrying, s3PolicyFromLock } from "./retry.ts";

const POLICY = { timeoutMs: 1000, retries: 3, retryDelayMs: 10, backoff: 2 };

Deno.test("retrying: a passing failure is tried again, with growing pauses, then given up", async () => {
  const pauses: number[] = [];
  const logged: string[] = [];
  let tries = 0;
  const error = await assertRejects(() =>
    retrying("storing change 7", POLICY, (_, m) => logged.push(m), () => {
      tries++;
      throw new S3Error("Cannot store: 503 SlowDown", 503, "SlowDown", true);
    }, {
      sleep: (ms) => {
        pauses.push(ms);
        return Promise.resolve();
      },
    })
  );
  assertEquals([tries, pauses], [4, [10, 20, 40]]);
  assertEquals(logged.length, 3);
  assertEquals(
    error.message,
    "Cannot store: 503 SlowDown; storing change 7 gave up after 4 tries: check that S3 is " +
      "reachable and answers",
  );
  assertEquals((error as S3Error).transient, false);
});

Deno.test("retrying: a failure that cannot pass is not tried again", async () => {
  let tries = 0;
  await assertRejects(() =>
    retrying("x", POLICY, () => {}, () => {
      tries++;
      throw new S3Error("403 AccessDenied", 403, "AccessDenied", false);
    })
  );
  assertEquals(tries, 1);
  let n = 0;
  assertEquals(
    await retrying("x", POLICY, () => {}, () => {
      if (n++ === 0) throw new S3Error("no answer", undefined, undefined, true);
      return Promise.resolve("done");
    }, { sleep: () => Promise.resolve() }),
    "done",
  );
});

Deno.test("backup.lock may set the S3 timeouts and retries", async () => {
  assertEquals(s3PolicyFromLock({ backend_url: "s3://b/x" }), DEFAULT_S3_POLICY);
  assertEquals(
    s3PolicyFromLock({
      backend_url: "s3://b/x",
      s3_timeout_s: 2,
      s3_retries: 1,
      s3_retry_delay_s: 0.5,
    }),
    { timeoutMs: 2000, retries: 1, retryDelayMs: 500, backoff: 2 },
  );
  await assertRejects(
    () => Promise.resolve(s3PolicyFromLock({ backend_url: "s3://b/x", s3_retries: 1.5 })),
    /"s3_retries" in backup.lock must be a whole number, not 1.5: fix or remove it/,
  );
  // 0 would not mean "no bound" but a request that fails at once.
  await assertRejects(
    () => Promise.resolve(s3PolicyFromLock({ backend_url: "s3://b/x", s3_timeout_s: 0 })),
    /"s3_timeout_s" in backup.lock must be a number of seconds above 0 \(every request is bounded\), not 0: fix or remove it/,
  );
  assertEquals(
    s3PolicyFromLock({ backend_url: "s3://b/x", s3_retry_delay_s: 0 }).retryDelayMs,
    0,
  );
});
