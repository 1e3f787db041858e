/**
 * A copy on a backup server or in S3 is tied to its backup id too (backup.lock's
 * `backup_ids`): one whose URL reaches another backup gets none of the node's changes; a
 * Python server's backup (wire v1) has no id, and its copy is not tied.
 *
 * @module
 */
import { assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { BufferedOutput, makeBackup, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import {
  A_CHANGES,
  NEXT,
  NONE_ON_SERVER,
  settledCopy,
  startPlugin,
  UNTIED,
} from "./support/copy_tie.ts";
import { type Setup, withServer, writeCredential } from "./support/v2_server.ts";
import { withTestServer } from "./support/wire_server.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { writeCredentials } from "./support/rgw.ts";
import { type LockFile, readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import type { Backend } from "../lib/backends/backend.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { S3Backend } from "../lib/backends/s3/backend.ts";
import { readChain } from "../lib/format/chain.ts";
import { formatBackupId } from "../lib/format/segment.ts";
import { mirror } from "../lib/cli/mirror.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { openReader } from "../lib/backends/open.ts";

/** Node A, at version 15 with its file backup, and an async copy at `copy` made by mirror. */
async function nodeWithCopy(copy: string, setUp: (dir: string) => void): Promise<string> {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  setUp(dir);
  writeLockFile(dir, { backend_url: await makeBackup(`${base}/backup`, A_CHANGES) });
  const output = new BufferedOutput();
  assertEquals(await mirror([copy, "--lightning-dir", dir, "--async"], output), 0);
  return dir;
}

/**
 * Node A, at version 15 with its file backup, and a mirror on `server` (as the node carol)
 * made by mirror, whose backup the server then lost; `lock` is merged into backup.lock.
 */
async function nodeWithLostMirror(
  { url, nodes }: Setup,
  lock: Partial<LockFile> = {},
): Promise<string> {
  const dir = makeNodeDir("restart");
  try {
    const base = Deno.realPathSync(`${dir}/..`);
    writeCredential(dir, JSON.stringify({ node: "carol", key: nodes.add("carol") }));
    writeLockFile(dir, { backend_url: await makeBackup(`${base}/backup`, A_CHANGES) });
    const output = new BufferedOutput();
    assertEquals(await mirror([url, "--lightning-dir", dir], output), 0, output.transcript);
    writeLockFile(dir, { ...readLockFile(dir), ...lock });
    Deno.removeSync(nodes.backupDir("carol"), { recursive: true });
    return dir;
  } catch (error) {
    removeNodeDir(dir);
    throw error;
  }
}

Deno.test("an async copy on a wire v2 server is tied to the server's backup, and gets nothing once its URL reaches another node's", async () => {
  await withServer(async ({ url, nodes }) => {
    const as = (node: string) => JSON.stringify({ node, key: nodes.add(node) });
    const carol = as("carol");
    const dave = as("dave");
    const dir = await nodeWithCopy(url, (dir) => writeCredential(dir, carol));
    let backend: Backend | undefined;
    try {
      const lock = readLockFile(dir);
      const carols = formatBackupId(readChain(nodes.backupDir("carol")).backupId);
      assertEquals(lock.backup_ids, { [url]: carols });
      writeLockFile(dir, { ...lock, async_retry_s: 0.05 });
      // Tied to the backup it holds, the copy takes the node's changes.
      backend = await startPlugin(dir);
      await backend.append(NEXT[0]);
      const copied = await settledCopy(backend);
      assertEquals(
        [copied.state, copied.version],
        ["caught-up", NEXT[0].version],
        copied.error ?? "",
      );
      backend.close();
      // The credential of another node of the server copied in: the URL reaches dave's backup,
      // which is not made yet (asking its id makes it empty).
      writeCredential(dir, dave);
      backend = await startPlugin(dir);
      await backend.append(NEXT[1]);
      const status = await settledCopy(backend);
      assertEquals(status.state, "failing", JSON.stringify(status));
      assertMatch(status.error!, NONE_ON_SERVER);
      assertEquals(status.error!.includes(carols), true);
      backend.close();
      backend = undefined;
      assertEquals(existsSync(nodes.backupDir("dave")), true, "made empty by asking its id");
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  });
});

Deno.test("an async copy whose backup the server no longer holds is said to be gone, not another node's (an empty one asking its id made in its place), and mirror makes it anew", async () => {
  await withServer(async ({ url, nodes }) => {
    const carol = JSON.stringify({ node: "carol", key: nodes.add("carol") });
    const dir = await nodeWithCopy(url, (dir) => writeCredential(dir, carol));
    let backend: Backend | undefined;
    try {
      const lock = readLockFile(dir);
      const tied = (lock.backup_ids as Record<string, string>)[url];
      // Removed on the server by hand (remove-node keeps it; this did not).
      Deno.removeSync(nodes.backupDir("carol"), { recursive: true });
      writeLockFile(dir, { ...lock, async_retry_s: 0.05 });
      backend = await startPlugin(dir);
      await backend.append(NEXT[0]);
      const status = await settledCopy(backend);
      assertEquals(status.state, "failing", JSON.stringify(status));
      assertMatch(status.error!, NONE_ON_SERVER);
      assertEquals(status.error!.includes(tied), true);
      backend.close();
      backend = undefined;
      assertEquals(existsSync(nodes.backupDir("carol")), true, "made empty by asking its id");
      // The advice: the copy made anew at that URL, and tied to its new backup.
      writeLockFile(dir, { ...lock, async_urls: [] });
      const output = new BufferedOutput();
      assertEquals(await mirror([url, "--lightning-dir", dir, "--async"], output), 0);
      const made = formatBackupId(readChain(nodes.backupDir("carol")).backupId);
      assertEquals(readLockFile(dir).backup_ids, { [url]: made });
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  });
});

Deno.test("a mirror whose backup the server no longer holds stops the node, saying so", async () => {
  await withServer(async (server) => {
    const dir = await nodeWithLostMirror(server);
    let backend: Backend | undefined;
    try {
      backend = await startPlugin(dir);
      // The plugin's check at its start (and its first write).
      const error = await assertRejects(() => backend!.ready!());
      assertMatch(error.message, /^socket:\S+: the server holds no backup of this node any more/);
      assertMatch(error.message, /remove the URL from mirror_urls and make the copy anew/);
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  });
});

Deno.test("mirror does not tie a copy on a server that holds no backup of the node, nor make one there", async () => {
  await withServer(async ({ url, nodes }) => {
    const dir = makeNodeDir("restart");
    const base = Deno.realPathSync(`${dir}/..`);
    let backend: Backend | undefined;
    try {
      writeCredential(dir, JSON.stringify({ node: "carol", key: nodes.add("carol") }));
      // Named without an id, as an older cln-backup left it; the server lost carol's backup.
      const lock = {
        backend_url: await makeBackup(`${base}/backup`, A_CHANGES),
        async_urls: [url],
      };
      writeLockFile(dir, lock);
      const output = new BufferedOutput();
      assertEquals(await mirror([url, "--lightning-dir", dir], output), 1);
      assertMatch(
        output.stderr.join("\n"),
        /names socket:.* already, and its backup id, which this would record, cannot be read: the server holds no backup of this node there, or an empty one \(version 0\): tie the copy once the node has written to it/,
      );
      assertEquals(readLockFile(dir), lock);
      assertEquals(existsSync(nodes.backupDir("carol")), false);
      // Once the node has written to it, the copy holds a backup, and is tied to it.
      writeLockFile(dir, { ...lock, async_retry_s: 0.05 });
      backend = await startPlugin(dir);
      await backend.append(NEXT[0]);
      const copied = await settledCopy(backend);
      assertEquals([copied.state, copied.version], ["caught-up", NEXT[0].version], copied.error!);
      backend.close();
      backend = undefined;
      const tied = new BufferedOutput();
      assertEquals(await mirror([url, "--lightning-dir", dir], tied), 0, tied.transcript);
      const carols = formatBackupId(readChain(nodes.backupDir("carol")).backupId);
      assertEquals(readLockFile(dir).backup_ids, { [url]: carols });
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  });
});

Deno.test("an async copy on a wire v1 server has no backup id, and is not tied", async () => {
  await withTestServer(async (server) => {
    const dir = await nodeWithCopy(server.url, () => {});
    try {
      assertEquals(readLockFile(dir).backup_ids, undefined);
    } finally {
      removeNodeDir(dir);
    }
  });
});

Deno.test("a copy mirror makes where backup_ids still names a removed copy's id is not tied to that id", async () => {
  await withTestServer(async (server) => {
    // An empty node, as above: a copy made from a snapshot meets a defect of its own.
    const dir = makeNodeDir();
    const base = Deno.realPathSync(`${dir}/..`);
    let backend: Backend | undefined;
    try {
      // A copy at this URL was removed from async_urls by hand, its backup_ids entry left.
      writeLockFile(dir, {
        backend_url: await makeBackup(`${base}/backup`, []),
        backup_ids: { [server.url]: "ab".repeat(16) },
        async_retry_s: 0.05,
      });
      // A new copy there whose id is not read (a wire v1 server's has none).
      const output = new BufferedOutput();
      assertEquals(await mirror([server.url, "--lightning-dir", dir, "--async"], output), 0);
      assertEquals(readLockFile(dir).backup_ids, undefined, output.transcript);
      backend = await startPlugin(dir);
      await backend.append(A_CHANGES[0]);
      const copied = await settledCopy(backend);
      assertEquals([copied.state, copied.version], ["caught-up", 1], copied.error!);
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  });
});

rgwTest(
  "an async S3 copy is tied to its backup id, and gets nothing from a node whose lock ties it to another",
  async () => {
    const s = sharedRgw();
    const bucket = await s.bucket();
    const copy = s.url(bucket, "a-copy");
    const dir = await nodeWithCopy(copy, (dir) => writeCredentials(dir, s.credentials));
    let backend: Backend | undefined;
    try {
      const lock = readLockFile(dir);
      const ids = lock.backup_ids as Record<string, string>;
      const opened = await S3Backend.connect(copy, { credentials: s.credentials });
      assertEquals(ids, { [copy]: await opened.backupIdHex() });
      opened.close();
      // Tied to the backup it holds, the copy takes the node's changes.
      writeLockFile(dir, { ...lock, async_retry_s: 0.05 });
      backend = await startPlugin(dir);
      await backend.append(NEXT[0]);
      const copied = await settledCopy(backend);
      assertEquals(
        [copied.state, copied.version],
        ["caught-up", NEXT[0].version],
        copied.error ?? "",
      );
      backend.close();
      // Another node's copy, at the same URL in its backup.lock: pasted into this one.
      const other = s.url(bucket, "b-copy");
      await createS3Backup(other, s.credentials);
      writeLockFile(dir, {
        ...lock,
        async_urls: [other],
        backup_ids: { [other]: ids[copy] },
        async_retry_s: 0.05,
      });
      backend = await startPlugin(dir);
      await backend.append(NEXT[1]);
      const status = await settledCopy(backend);
      assertEquals(status.state, "failing", JSON.stringify(status));
      assertMatch(status.error!, UNTIED);
      backend.close();
      backend = undefined;
      const untouched = await S3Backend.connect(other, { credentials: s.credentials });
      assertEquals(untouched.state().version, 0);
      untouched.close();
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  },
);

Deno.test('a mirror whose backup the server no longer holds, under "mirror_failure": "degrade", is dropped at the start, saying so, and gets none of the changes the node goes on with', async () => {
  await withServer(async (server) => {
    const { nodes } = server;
    const dir = await nodeWithLostMirror(server, { mirror_failure: "degrade" });
    let backend: Backend | undefined;
    try {
      const logs: string[] = [];
      backend = await startPlugin(dir, logs);
      await backend.ready!();
      await backend.append(NEXT[0]);
      assertEquals(
        backend.state().destinations?.map((d) => [d.state, d.version]),
        [["ok", NEXT[0].version], ["broken", 0]],
      );
      const broken = logs.filter((line) => line.startsWith("BROKEN:"));
      assertEquals(broken.length, 1, logs.join("\n"));
      assertMatch(
        broken[0],
        /^BROKEN: destination socket:\S+ gets no changes: the server holds no backup of this node any more/,
      );
      backend.close();
      backend = undefined;
      // The empty backup asking its id made there took nothing.
      const copy = openReader(`file://${nodes.backupDir("carol")}`);
      try {
        assertEquals(copy.describe().lastVersion, 0);
      } finally {
        copy.close();
      }
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  });
});
