/**
 * Interrupts in compact: an encrypted server backup's compaction (built
 * here, compactSealed) stopped by Ctrl-C at the restore's checkpoint must surface as
 * Interrupted (exit 130, "Interrupted: compact stopped; the backup restores as it did"), not
 * as a failed compaction (exit 1, "Cannot compact backup: interrupted by SIGINT ...").
 */
import { assertEquals } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";
import { compactSealed } from "../lib/backends/socket/sealed_compaction.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { initEncrypted, startEncryptedServer } from "./support/encrypted_server.ts";
import { serverStatus } from "../lib/backends/socket/server_checks.ts";
import { armInterrupts, INTERRUPT_SIGNALS, Interrupted } from "../lib/fs/interrupt.ts";

Deno.test("compactSealed lets a checkpoint's Interrupted through, unwrapped", async () => {
  const s = await startEncryptedServer();
  try {
    const key = await initEncrypted(s);
    for (const name of ["fresh-start", "restart"] as const) {
      const node = FakeLightningd.spawn({ lightningDir: s.dir });
      assertEquals(await node.replay(loadFixture(name).raw), "committed", node.aborted);
      assertEquals((await node.close()).code, 0, await node.stderr());
    }
    const { lastVersion } = await serverStatus(s.url, s.credential);
    // SIGINT already heard (the worker stored it): the restore's first checkpoint throws.
    const flag = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(flag, 0, INTERRUPT_SIGNALS.SIGINT);
    armInterrupts(flag);
    let thrown: unknown;
    try {
      await compactSealed({
        url: s.url,
        target: socketUrl(s.url),
        credential: s.credential,
        key: key.bytes,
        version: lastVersion - 1,
        scratch: `${s.root}/scratch`,
        timeoutMs: 5_000,
        compactTimeoutMs: DEFAULT_RETRY_POLICY.compactTimeoutMs,
      });
    } catch (error) {
      thrown = error;
    } finally {
      armInterrupts(undefined);
    }
    assertEquals(
      { interrupted: thrown instanceof Interrupted, message: (thrown as Error)?.message },
      { interrupted: true, message: "interrupted by SIGINT" },
    );
  } finally {
    await s.stop();
  }
});
