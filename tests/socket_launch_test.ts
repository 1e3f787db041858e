/**
 * The launcher `init` writes for a `socket:` backup runs the real plugin with network access
 * to the server's host:port only (or the proxy's), and nothing else; under exactly those
 * flags the plugin backs the node up to a real server, directly and through microsocks.
 * (That the flags deny other ports and files is shown by tests/permissions_test.ts.)
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd, throughLauncher } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { Microsocks } from "./support/microsocks.ts";
import { startServer } from "./support/wire_server.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { restore } from "../lib/cli/restore.ts";
import { LAUNCHER_NAME, parseLauncher } from "../lib/cli/launcher.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { within } from "./support/plugin_session.ts";

async function runThroughLauncher(url: string, allowNet: string): Promise<void> {
  const dir = makeNodeDir("restart");
  try {
    const output = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.transcript);
    const launcher = `${dir}/${LAUNCHER_NAME}`;
    const { args } = parseLauncher(Deno.readTextFileSync(launcher))!;
    assertEquals(args.filter((a) => a.startsWith("--allow")), [
      // backup.key too: the plugin refuses an encryption key beside a socket: backup.lock.
      `--allow-read=${Deno.realPathSync(dir)}/backup.lock,${Deno.realPathSync(dir)}/backup.key,${
        Deno.realPathSync(dir)
      }/backup.credential`,
      `--allow-net=${allowNet}`,
    ]);
    const lightningd = FakeLightningd.spawn({
      lightningDir: dir,
      ...throughLauncher(dir),
    });
    try {
      await lightningd.getmanifest();
      for (let i = 0; i < 3; i++) {
        const outcome = await lightningd.transaction([`DELETE FROM vars WHERE name = 'n${i}'`]);
        assertEquals(outcome, "committed", lightningd.aborted);
      }
      assertEquals((await lightningd.stop()).code, 0);
      assertEquals(lightningd.garbage, []);
    } finally {
      await lightningd.kill().catch(() => {});
    }
    const restored = `${dir}/../restored.sqlite3`;
    assertEquals(await restore([url, restored], new BufferedOutput()), 0);
    assertEquals(dumpDatabase(restored), dumpDatabase(`${dir}/lightningd.sqlite3`));
  } finally {
    removeNodeDir(dir);
  }
}

Deno.test("the launcher's plugin reaches its server, allowed that host:port only", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-launch-" });
  const server = startServer(`${root}/served`);
  try {
    await runThroughLauncher(server.url, `127.0.0.1:${server.server.port}`);
    assert(server.logs.some((l) => /is now the writer of/.test(l)));
  } finally {
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("through a SOCKS5 proxy, the launcher allows the proxy's host:port only", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-launch-proxy-" });
  const server = startServer(`${root}/served`);
  const proxy = await Microsocks.start();
  try {
    const url = `socket:localhost:${server.server.port}?proxy=socks5:127.0.0.1:${proxy.port}`;
    await runThroughLauncher(url, `127.0.0.1:${proxy.port}`);
  } finally {
    await proxy.kill();
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("backup.lock sent through a proxy after init: the node stops at once, told to run doctor", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-launch-denied-" });
  const server = startServer(`${root}/served`);
  const dir = makeNodeDir("restart");
  try {
    const output = new BufferedOutput();
    assertEquals(await init([server.url, "--lightning-dir", dir], output), 0, output.transcript);
    // The operator moves to Tor by hand: the launcher still allows the server only.
    writeLockFile(dir, { backend_url: `${server.url}?proxy=socks5:127.0.0.1:9050` });
    const lightningd = FakeLightningd.spawn({ lightningDir: dir, ...throughLauncher(dir) });
    try {
      await lightningd.getmanifest();
      const write = lightningd.transaction(["DELETE FROM vars WHERE name = 'n0'"]);
      assertEquals(await within(15_000, "the first db_write", write), "aborted");
      assertMatch(
        lightningd.logs.filter((l) => l.level === "broken").map((l) => l.message).join("\n"),
        new RegExp(
          `Cannot store change \\d+: the plugin's launcher does not allow it \\(requires net ` +
            `access to "127\\.0\\.0\\.1:9050"\\): backup\\.lock names a backup the launcher was not ` +
            `written for \\(changed after init\\?\\): run "cln-backup doctor --lightning-dir ` +
            `'${
              Deno.realPathSync(dir).replaceAll(".", "\\.")
            }'", which names the flags the launcher needs`,
        ),
      );
      assertEquals(lightningd.logs.filter((l) => /reconnect/.test(l.message)), []);
    } finally {
      await lightningd.kill().catch(() => {});
    }
  } finally {
    removeNodeDir(dir);
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});
