import { assert, assertEquals, assertMatch, assertRejects } from "../../../tests/support/assert.ts";
import { encodeMetadata } from "../../wire/packets.ts";
import { SocketBackend } from "./backend.ts";
import { RemoteCompaction } from "./compaction.ts";
import { DEFAULT_RETRY_POLICY } from "./options.ts";

const POLICY = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 500, compactTimeoutMs: 300 };

/**
 * A listener that reads each connection's first packet, then closes it or stays silent; or,
 * `one-at-a-time`, serves the first connection only, as the Python server does while it is
 * open: METADATA (an empty backup) to its REQ_METADATA, and no read of any other.
 */
async function withListener(
  answer: "close" | "silence" | "one-at-a-time",
  body: (url: string) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      held.push(conn);
      if (answer === "one-at-a-time") {
        if (held.length > 1) continue;
        await conn.read(new Uint8Array(5));
        await conn.write(encodeMetadata({ version: 0, prevVersion: 0, versionCount: 0 }));
        continue;
      }
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
    // Silent from the first packet: REQ_METADATA, which comes before COMPACT, times out.
    ["silence", /timed out after 0\.5 s/],
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

Deno.test("backup-compact on a server that serves one connection at a time (the Python one): said so, at once", async () => {
  await withListener("one-at-a-time", async (url) => {
    const backend = SocketBackend.open(url, { policy: { ...POLICY, compactTimeoutMs: 60_000 } });
    await backend.ready();
    const compaction = new RemoteCompaction(backend);
    const started = performance.now();
    const error = await assertRejects(() => compaction.compact());
    // Within the answer's bound, not after the compaction's ten minutes.
    assert(performance.now() - started < 5_000);
    assertMatch(
      error.message,
      /^Cannot compact backup: the server at 127\.0\.0\.1:\d+ does not answer a second connection while the node's is open: it serves one connection at a time, as the Python backup-cli server does, so it cannot compact while the node runs\. Nothing changed, and the node's writes go on\. .*"cln-backup upgrade <its URL>".*"cln-backup server <its URL> <addr:port> --allow-v1"; or compact it while lightningd is stopped \("cln-backup compact 'socket:127\.0\.0\.1:\d+'"\)$/,
    );
    backend.close();
  });
});
