/**
 * An async copy of a backup on a wire v2 server, with the real plugin under the launcher
 * `mirror --async` writes: a copy left behind (the node ran without it) catches up from a
 * fetch of the server's backup into `cln-backup-scratch`, and restores equal to the node.
 *
 * @module
 */
import { assertEquals } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { launchAndCommit } from "./support/launch_probe.ts";
import { status } from "./support/plugin_session.ts";
import { withServer, writeCredential } from "./support/v2_server.ts";
import { withTestServer } from "./support/wire_server.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { credentialIn } from "../lib/backends/socket/credential.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { SCRATCH_DIR } from "../lib/backends/plugin_scratch.ts";
import { init } from "../lib/cli/init.ts";
import { LAUNCHER_NAME } from "../lib/cli/launcher.ts";
import { mirror } from "../lib/cli/mirror.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";

interface AsyncStatus {
  url: string;
  state: string;
  version: number;
  lag_versions: number;
}

/**
 * Backs up the node at `dir` to the server `url` (init), adds an async file copy in `root`,
 * lets the node run three changes without it, then starts the launcher's plugin: the copy
 * catches up from a fetch of the server's backup and restores equal to the node.
 */
async function copyCatchesUp(url: string, root: string, dir: string): Promise<void> {
  const output = new BufferedOutput();
  assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.transcript);
  const copy = `file://${root}/copy`;
  assertEquals(
    await mirror([copy, "--lightning-dir", dir, "--async"], output),
    0,
    output.transcript,
  );
  const lock = readLockFile(dir);
  assertEquals(lock.async_urls, [copy]);

  // The node runs without the copy for a while: it falls three changes behind.
  writeLockFile(dir, { backend_url: url });
  const alone = FakeLightningd.spawn({ lightningDir: dir });
  for (let i = 0; i < 3; i++) {
    const outcome = await alone.transaction([`DELETE FROM vars WHERE name = 'a${i}'`]);
    assertEquals(outcome, "committed", alone.aborted);
  }
  assertEquals((await alone.close()).code, 0, await alone.stderr());

  writeLockFile(dir, lock);
  const lightningd = await launchAndCommit(dir, `${dir}/${LAUNCHER_NAME}`, 2);
  let copies: AsyncStatus[] = [];
  for (let tries = 0; tries < 200; tries++) {
    const report = status(await lightningd.request("backup-status", {}));
    copies = report.async_destinations as AsyncStatus[];
    if (copies[0]?.state === "caught-up" && copies[0].lag_versions === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assertEquals(
    copies.map((c) => [c.url, c.state, c.lag_versions]),
    [[copy, "caught-up", 0]],
    JSON.stringify(copies),
  );
  assertEquals((await lightningd.stop()).code, 0);
  const restored = `${root}/restored.sqlite3`;
  restoreBackup(openReader(copy), restored);
  assertEquals(dumpDatabase(restored), dumpDatabase(`${dir}/lightningd.sqlite3`));
  assertEquals([...Deno.readDirSync(`${dir}/${SCRATCH_DIR}`)], [], "the fetch cleaned up");
}

Deno.test("an async file copy of a server's backup catches up from it under the launcher", async () => {
  await withServer(async ({ root, url, nodes }) => {
    const dir = makeNodeDir("restart");
    try {
      writeCredential(dir, JSON.stringify({ node: "carol", key: nodes.add("carol") }));
      await copyCatchesUp(url, root, dir);
    } finally {
      removeNodeDir(dir);
    }
  });
});

Deno.test("an async file copy of a wire v1 server's backup catches up under the launcher, which reads no environment", async () => {
  // Without a credential the fetch speaks v1; it once looked for one in the environment,
  // which the launcher does not let the plugin read.
  await withTestServer(async (server, root) => {
    const dir = makeNodeDir("restart");
    try {
      await copyCatchesUp(server.url, root, dir);
    } finally {
      removeNodeDir(dir);
    }
  });
});

Deno.test("an async copy on a wire v2 server, made by mirror from a node with a database, takes the node's changes and restores equal", async () => {
  // mirror seeds the copy with a snapshot: a base and no change after it, which cannot rewind.
  // The server once said it could rewind to 0, and the copy's first open was refused.
  await withServer(async ({ root, url, nodes }) => {
    const dir = makeNodeDir("restart");
    try {
      writeCredential(dir, JSON.stringify({ node: "carol", key: nodes.add("carol") }));
      const output = new BufferedOutput();
      const primary = `file://${root}/primary`;
      assertEquals(await init([primary, "--lightning-dir", dir], output), 0, output.transcript);
      assertEquals(
        await mirror([url, "--lightning-dir", dir, "--async"], output),
        0,
        output.transcript,
      );
      writeLockFile(dir, { ...readLockFile(dir), async_retry_s: 0.05 });
      const lightningd = FakeLightningd.spawn({ lightningDir: dir });
      let copies: AsyncStatus[] = [];
      try {
        await lightningd.getmanifest();
        for (let i = 0; i < 3; i++) {
          const outcome = await lightningd.transaction([`DELETE FROM vars WHERE name = 'c${i}'`]);
          assertEquals(outcome, "committed", lightningd.aborted);
        }
        for (let tries = 0; tries < 200; tries++) {
          const report = status(await lightningd.request("backup-status", {}));
          copies = report.async_destinations as AsyncStatus[];
          if (copies[0]?.state === "caught-up" && copies[0].lag_versions === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        assertEquals((await lightningd.stop()).code, 0);
      } finally {
        await lightningd.kill().catch(() => {});
      }
      assertEquals(
        copies.map((c) => [c.url, c.state, c.lag_versions]),
        [[url, "caught-up", 0]],
        JSON.stringify(copies),
      );
      const reader = await SocketBackupReader.fetch(url, 5_000, credentialIn(dir), root);
      const restored = `${root}/restored.sqlite3`;
      try {
        restoreBackup(reader, restored);
      } finally {
        reader.close();
      }
      assertEquals(dumpDatabase(restored), dumpDatabase(`${dir}/lightningd.sqlite3`));
    } finally {
      removeNodeDir(dir);
    }
  });
});
