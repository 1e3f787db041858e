/**
 * lightningd goes away (the plugin's input ends) while a change waits for its backup: the real
 * plugin under the fake lightningd must exit at once, without answering the change (lightningd
 * never committed it), and leave the backup's writer lock free for the next plugin, however
 * long the backend would have gone on retrying or waiting. Each wait here is configured for
 * minutes: an exit within seconds can only be the plugin's own stop.
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { SCHEMA, within } from "./support/plugin_session.ts";
import { withServer } from "./support/v2_server.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { CREDENTIAL_NAME } from "../lib/backends/socket/credential.ts";
import { WireConnection } from "../lib/backends/socket/connection.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import { keyFromText } from "../lib/wire/handshake.ts";
import { encodeChangeV2, encodeFrame, V2Type } from "../lib/wire/packets_v2.ts";

/** Well within every wait configured below, and within the test's own time. */
const PROMPTLY_MS = 15_000;

/** Resolves once the plugin logged a line matching `pattern`. */
async function logged(lightningd: FakeLightningd, pattern: RegExp): Promise<void> {
  await within(
    PROMPTLY_MS,
    `a log line matching ${pattern}`,
    (async () => {
      while (!lightningd.logs.some((l) => pattern.test(l.message))) {
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
  );
}

/**
 * Sends the first transaction, waits until the plugin logs that it waits (`waiting`), closes
 * its input as a lightningd that exits does, and checks that it exits cleanly and promptly
 * without answering.
 */
async function closeWhileWaiting(lightningd: FakeLightningd, waiting: RegExp): Promise<void> {
  await lightningd.getmanifest();
  const outcome = lightningd.transaction(SCHEMA);
  // Awaited below; should the exit not come, the fake's teardown must not make it uncaught.
  outcome.catch(() => {});
  await logged(lightningd, waiting);
  const exit = await within(PROMPTLY_MS, "the plugin's exit", lightningd.close());
  assertEquals(exit.code, 0);
  assertEquals(await outcome, "aborted");
  assertMatch(lightningd.aborted!, /plugin died during db_write/);
  assertEquals(lightningd.received.filter((m) => m.result !== undefined && !m.method).length, 1);
  assertMatch(
    await lightningd.stderr(),
    /lightningd closed the plugin's input while change 1 waited for the backup: stopping/,
  );
}

Deno.test("input ends while a change waits for a mirror's reconnects: the plugin exits, the lock is free", async () => {
  const root = Deno.makeTempDirSync({ prefix: "input-end-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const downPort = listener.addr.port;
  listener.close();
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  const file = `file://${root}/backup`;
  createFileBackup(`${root}/backup`);
  // The mirror's server is down, and the plugin would try again for hours.
  writeLockFile(dir, {
    backend_url: file,
    mirror_urls: [`socket:127.0.0.1:${downPort}`],
    socket_timeout_s: 1,
    socket_retries: 100,
    socket_retry_delay_s: 600,
  });
  const first = FakeLightningd.spawn({ lightningDir: dir });
  let second: FakeLightningd | undefined;
  try {
    await closeWhileWaiting(first, /reconnect 1 of 100 in 600 s/);
    // The operator drops the mirror and starts the node again: the file backup's lock is free.
    writeLockFile(dir, { backend_url: file });
    second = FakeLightningd.spawn({ lightningDir: dir });
    await second.getmanifest();
    assertEquals(
      await within(PROMPTLY_MS, "db_write", second.transaction(SCHEMA)),
      "committed",
      second.aborted,
    );
    assertEquals((await second.stop()).code, 0);
  } finally {
    await first.kill().catch(() => {});
    await second?.kill().catch(() => {});
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("input ends while a change waits for the server to hand over a BUSY backup: the plugin exits", async () => {
  await withServer(async ({ root, url, nodes }) => {
    const key = nodes.add("carol");
    // The node's connection left open by a host that went down: it heartbeat, then fell silent.
    const left = await WireConnection.open(socketUrl(url), 5_000, {
      node: "carol",
      key: keyFromText(key)!,
      path: `${root}/carol.credential`,
    });
    const dir = `${root}/node`;
    Deno.mkdirSync(dir);
    let lightningd: FakeLightningd | undefined;
    try {
      assertEquals((await left.request(encodeChangeV2(1, ["SELECT 1"]))).type, V2Type.Ack);
      assertEquals((await left.request(encodeFrame(V2Type.ReqMetadata))).type, V2Type.Metadata);
      Deno.writeTextFileSync(`${dir}/${CREDENTIAL_NAME}`, JSON.stringify({ node: "carol", key }), {
        mode: 0o600,
      });
      Deno.chmodSync(`${dir}/${CREDENTIAL_NAME}`, 0o600);
      writeLockFile(dir, { backend_url: url, socket_takeover_wait_s: 600 });
      lightningd = FakeLightningd.spawn({ lightningDir: dir });
      await closeWhileWaiting(lightningd, /waiting up to 600 s for the server to hand it over/);
    } finally {
      await lightningd?.kill().catch(() => {});
      left.close();
    }
  }, { writerSilenceMs: 600_000 });
});
