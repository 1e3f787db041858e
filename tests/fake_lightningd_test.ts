/**
 * The fake lightningd sends a notification as lightningd v26.06.6 does (plugins_notify and
 * plugin_single_notify in lightningd/plugin.c): only to a plugin whose `getmanifest` answer
 * subscribed to its topic, or to `*` (which covers every topic but `log`), and only once the
 * plugin answered `init`. `shutdown` is no exception: a plugin that did not subscribe to it
 * sees its input end instead.
 */
import { assertEquals } from "./support/assert.ts";
import { FakeLightningd, splitMessages } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";

const PROBE = new URL("./support/notification_probe.ts", import.meta.url).pathname;

/** Runs `fn` with a fake lightningd driving a probe subscribed to `subscriptions`. */
async function withProbe(
  subscriptions: string[],
  fn: (lightningd: FakeLightningd) => Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync();
  const lightningd = FakeLightningd.spawn({
    lightningDir: dir,
    command: [Deno.execPath(), "run", "-A", PROBE],
    env: { PROBE_SUBSCRIPTIONS: JSON.stringify(subscriptions) },
  });
  try {
    await fn(lightningd);
  } finally {
    await lightningd.kill().catch(() => {});
    Deno.removeSync(dir, { recursive: true });
  }
}

/** The notifications the probe heard, once it has exited. */
const heard = (lightningd: FakeLightningd) =>
  lightningd.logs.map((log) => log.message.replace(/^heard /, ""));

Deno.test("fake lightningd: a replay sends a plugin only the recorded notifications it subscribed to", async () => {
  await withProbe(["shutdown"], async (lightningd) => {
    assertEquals(await lightningd.replay(loadFixture("fresh-start").raw), "committed");
    assertEquals((await lightningd.close()).code, 0);
    assertEquals(heard(lightningd), ["shutdown"]);
  });
});

Deno.test("fake lightningd: a replay sends a plugin subscribed to * every recorded notification", async () => {
  const raw = loadFixture("rpc-options").raw;
  const recorded = splitMessages(raw)
    .filter((m) => m.json.id === undefined)
    .map((m) => m.json.method);
  await withProbe(["*"], async (lightningd) => {
    assertEquals(await lightningd.replay(raw), "committed");
    assertEquals((await lightningd.close()).code, 0);
    assertEquals(heard(lightningd), recorded);
  });
});

Deno.test("fake lightningd: notify skips a plugin before init, and * does not cover log", async () => {
  await withProbe(["*"], async (lightningd) => {
    assertEquals(await lightningd.notify("warning", { level: "warn" }), false);
    await lightningd.getmanifest();
    assertEquals(await lightningd.notify("warning", { level: "warn" }), false);
    await lightningd.init();
    assertEquals(await lightningd.notify("log", { level: "info", log: "x" }), false);
    assertEquals(await lightningd.notify("plugin_started", { plugin_name: "pay" }), true);
    assertEquals((await lightningd.stop()).code, 0);
    assertEquals(heard(lightningd), ["plugin_started", "shutdown"]);
  });
});

Deno.test("fake lightningd: stop closes the input of a plugin not subscribed to shutdown", async () => {
  await withProbe(["log"], async (lightningd) => {
    await lightningd.getmanifest();
    await lightningd.init();
    assertEquals(await lightningd.notify("log", { level: "info", log: "x" }), true);
    assertEquals((await lightningd.stop()).code, 0);
    assertEquals(heard(lightningd), ["log"]);
  });
});
