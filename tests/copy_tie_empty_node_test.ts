/**
 * A node set up before it has a database (its backup empty, at version 0) with a copy on a
 * backup server: the copy, made empty there and tied to that empty backup's id, is the node's
 * own, and takes the node's first changes; at the node's first start it is no refusal.
 *
 * @module
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { BufferedOutput, makeBackup, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { A_CHANGES, settledCopy, startPlugin } from "./support/copy_tie.ts";
import { withServer, writeCredential } from "./support/v2_server.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import type { Backend } from "../lib/backends/backend.ts";
import { readChain } from "../lib/format/chain.ts";
import { formatBackupId } from "../lib/format/segment.ts";
import { mirror } from "../lib/cli/mirror.ts";
import { init } from "../lib/cli/init.ts";
import { openReader } from "../lib/backends/open.ts";
import { FakeLightningd, throughLauncher } from "./support/fake_lightningd.ts";

/** How a node with no database yet gets its copy at `url`: by mirror, or by init. */
const SET_UPS: Record<string, (dir: string, url: string, isAsync: boolean) => Promise<number>> = {
  mirror: async (dir, url, isAsync) => {
    const base = Deno.realPathSync(`${dir}/..`);
    writeLockFile(dir, { backend_url: await makeBackup(`${base}/backup`, []) });
    const args = [url, "--lightning-dir", dir, ...(isAsync ? ["--async"] : [])];
    return await mirror(args, new BufferedOutput());
  },
  init: async (dir, url, isAsync) => {
    const base = Deno.realPathSync(`${dir}/..`);
    const args = [
      `file://${base}/backup`,
      "--lightning-dir",
      dir,
      isAsync ? "--async" : "--mirror",
      url,
    ];
    return await init(args, new BufferedOutput());
  },
};

for (const [how, setUp] of Object.entries(SET_UPS)) {
  for (const isAsync of [false, true]) {
    Deno.test(`a node with no database yet, its ${isAsync ? "async copy" : "mirror"} on a server made by ${how}: the plugin's first start takes it, and the first change reaches it`, async () => {
      await withServer(async ({ url, nodes }) => {
        const dir = makeNodeDir();
        let backend: Backend | undefined;
        try {
          writeCredential(dir, JSON.stringify({ node: "carol", key: nodes.add("carol") }));
          assertEquals(await setUp(dir, url, isAsync), 0);
          const lock = readLockFile(dir);
          // Tied to the empty backup made on the server.
          const carols = formatBackupId(readChain(nodes.backupDir("carol")).backupId);
          assertEquals(lock.backup_ids, { [url]: carols });
          writeLockFile(dir, { ...lock, async_retry_s: 0.05 });
          backend = await startPlugin(dir);
          await backend.ready?.();
          await backend.append(A_CHANGES[0]);
          if (isAsync) {
            const copied = await settledCopy(backend);
            assertEquals([copied.state, copied.version], ["caught-up", 1], copied.error ?? "");
          } else {
            assertEquals(
              backend.state().destinations?.map((d) => [d.version, d.state]),
              [[1, "ok"], [1, "ok"]],
            );
          }
        } finally {
          backend?.close();
          removeNodeDir(dir);
        }
      });
    });
  }
}

Deno.test("a node with no database yet, init with a mirror on a server: lightningd's first start runs the plugin, and its first changes are committed and reach the server", async () => {
  await withServer(async ({ url, nodes }) => {
    const dir = makeNodeDir();
    const base = Deno.realPathSync(`${dir}/..`);
    try {
      writeCredential(dir, JSON.stringify({ node: "carol", key: nodes.add("carol") }));
      const made = new BufferedOutput();
      const args = [`file://${base}/backup`, "--lightning-dir", dir, "--mirror", url];
      assertEquals(await init(args, made), 0, made.transcript);
      const lightningd = FakeLightningd.spawn({ lightningDir: dir, ...throughLauncher(dir) });
      try {
        await lightningd.getmanifest();
        await lightningd.init();
        for (const change of A_CHANGES.slice(0, 3)) {
          const outcome = await lightningd.dbWrite(change.version, [...change.statements]);
          assertEquals(outcome, "committed", lightningd.aborted);
        }
        assertEquals((await lightningd.stop()).code, 0);
      } finally {
        await lightningd.kill().catch(() => {});
      }
      const copy = openReader(`file://${nodes.backupDir("carol")}`);
      try {
        assertEquals(copy.describe().lastVersion, A_CHANGES[2].version);
      } finally {
        copy.close();
      }
    } finally {
      removeNodeDir(dir);
    }
  });
});

Deno.test("mirror on a node with no database yet says it made an empty copy, not one from the database", async () => {
  await withServer(async ({ url, nodes }) => {
    const dir = makeNodeDir();
    const base = Deno.realPathSync(`${dir}/..`);
    try {
      writeCredential(dir, JSON.stringify({ node: "carol", key: nodes.add("carol") }));
      writeLockFile(dir, { backend_url: await makeBackup(`${base}/backup`, []) });
      const output = new BufferedOutput();
      assertEquals(await mirror([url, "--lightning-dir", dir], output), 0, output.transcript);
      assertMatch(
        output.stdout[0],
        /^Created the empty backup socket:\S+ at version 0 \(no database at ".*\/lightningd\.sqlite3" yet\), and added it to "mirror_urls"/,
      );
    } finally {
      removeNodeDir(dir);
    }
  });
});
