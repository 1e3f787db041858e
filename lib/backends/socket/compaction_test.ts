import { assertEquals, assertMatch, assertRejects } from "../../../tests/support/assert.ts";
import { SocketBackend } from "./backend.ts";
import { RemoteCompaction } from "./compaction.ts";
import { DEFAULT_RETRY_POLICY } from "./options.ts";

const POLICY = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 500, compactTimeoutMs: 300 };

/** A listener that reads each connection's first packet, then closes it or stays silent. */
async function withListener(
  answer: "close" | "silence",
  body: (url: string) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      held.push(conn);
      await conn.read(new Uint8Array(5));
      if (answer === "close") conn.close();
    }
  })();
  try {
    await body(`socket:127.0.0.1:${listener.addr.port}`);
  } finally {
    listener.close();
    await serving.catch(() => {});
    for (const conn of held) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }
}

for (
  const [answer, why] of [
    ["close", /the server closed the connection/],
    ["silence", /timed out after 0\.3 s/],
  ] as const
) {
  Deno.test(`backup-compact on a server that gives no answer (${answer}): one clear error`, async () => {
    await withListener(answer, async (url) => {
      const backend = SocketBackend.open(url, { policy: POLICY });
      const compaction = new RemoteCompaction(backend);
      const error = await assertRejects(() => compaction.compact());
      assertMatch(
        error.message,
        /^Cannot compact backup: the server at 127\.0\.0\.1:\d+ gave no answer to COMPACT \(.*\); a server whose compaction fails closes the connection: see its log\. The backup is as it was, and the node's writes go on$/,
      );
      assertMatch(error.message, why);
      const { running, last } = compaction.status();
      assertEquals([running, last], [null, { ok: false, error: error.message }]);
      // The writer's own connection fares no better here: let it give up too.
      await backend.ready().catch(() => {});
      backend.close();
    });
  });
}
