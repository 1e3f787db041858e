/**
 * The `socket:` backup end to end: the real plugin process under the fake lightningd, our
 * server in this process, `init`, `restore`, `status` and `verify` through the wire.
 */
import { replayRecordedRuns } from "./support/plugin_session.ts";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { startServer, withTestServer } from "./support/wire_server.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { restore } from "../lib/cli/restore.ts";
import { status } from "../lib/cli/status.ts";
import { verify } from "../lib/cli/verify.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { DatabaseSync } from "node:sqlite";
import { SocketBackend } from "../lib/backends/socket/backend.ts";

/** Starts the plugin on `dir`, commits one transaction, and gives `body` the node. */
async function oneTransaction(
  dir: string,
  body: (lightningd: FakeLightningd) => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  const lightningd = FakeLightningd.spawn({ lightningDir: dir });
  try {
    await lightningd.getmanifest();
    assertEquals(
      await lightningd.transaction(["DELETE FROM vars WHERE name = 'x'"]),
      "committed",
    );
    await body(lightningd);
    assertEquals((await lightningd.stop()).code, 0);
  } finally {
    await lightningd.kill().catch(() => {});
  }
}

/** A database at `path` with a data_version of 9 and `blobs` rows of 4,000 random bytes. */
function blobDatabase(path: string, blobs: number): string {
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE vars (name TEXT, intval INTEGER); CREATE TABLE blobs (b BLOB)");
  db.exec("INSERT INTO vars VALUES ('data_version', 9)");
  for (let i = 0; i < blobs; i++) db.exec("INSERT INTO blobs VALUES (randomblob(4000))");
  db.close();
  return path;
}

Deno.test("the recorded runs back up through socket: and restore over the wire", async () => {
  await withTestServer(async (server, root) => {
    const dir = `${root}/node`;
    Deno.mkdirSync(dir);
    writeLockFile(dir, { backend_url: server.url });
    await replayRecordedRuns(dir);
    await oneTransaction(dir, async (lightningd) => {
      const answer = await lightningd.request("backup-status", {});
      const result = answer.result as Record<string, unknown>;
      const connection = result.connection as Record<string, unknown>;
      assertEquals([result.backend_url, result.version], [server.url, 480]);
      assertEquals(connection.destination, server.url.slice("socket:".length));
      assertEquals([connection.state, connection.reconnects], ["connected", 0]);
      assert(typeof connection.last_ack_ms === "number" && connection.last_ack_ms > 0);
    });
    const node = dumpDatabase(`${dir}/lightningd.sqlite3`);
    const output = new BufferedOutput();
    assertEquals(
      await restore([server.url, `${root}/restored.sqlite3`], output),
      0,
      output.transcript,
    );
    assertEquals(dumpDatabase(`${root}/restored.sqlite3`), node);
    const described = new BufferedOutput();
    assertEquals(await status([server.url, "--json"], described), 0, described.transcript);
    const description = JSON.parse(described.stdout[0]);
    assertEquals([description.url, description.lastVersion], [server.url, 480]);
    const verified = new BufferedOutput();
    assertEquals(await verify([server.url], verified), 0, verified.transcript);
    assertMatch(verified.stdout[0], /^OK: "socket:127\.0\.0\.1:\d+" holds versions/);
    assert(server.logs.some((l) => /is now the writer of/.test(l)));
  });
});

Deno.test("init over socket: sends the snapshot; the plugin goes on from it", async () => {
  await withTestServer(async (server, root) => {
    const dir = makeNodeDir("restart");
    try {
      const output = new BufferedOutput();
      assertEquals(await init([server.url, "--lightning-dir", dir], output), 0, output.transcript);
      assertMatch(output.stdout[0], /^Created the backup socket:.* at version 15$/);
      await oneTransaction(dir);
      const restored = `${root}/restored.sqlite3`;
      assertEquals(await restore([server.url, restored], new BufferedOutput()), 0);
      assertEquals(dumpDatabase(restored), dumpDatabase(`${dir}/lightningd.sqlite3`));
      // A second node pointed at the same server is refused: its backup is not empty.
      const other = makeNodeDir("restart");
      try {
        const again = new BufferedOutput();
        assertEquals(await init([server.url, "--lightning-dir", other], again), 1);
        assertMatch(
          again.stderr[0],
          /already holds a backup at version 16, not what an interrupted init of this node .*: give this node a new/,
        );
      } finally {
        removeNodeDir(other);
      }
    } finally {
      removeNodeDir(dir);
    }
  });
});

Deno.test("restore over wire v1 of a base in several parts: one SNAPSHOT, the same database", async () => {
  // The server reads the base part by part, each part's bytes holding until the next: the
  // packet it builds from them must still hold every part.
  const root = Deno.makeTempDirSync({ prefix: "socket-e2e-" });
  const database = blobDatabase(`${root}/node.sqlite3`, 640);
  assert(Deno.statSync(database).size > 2.5 * 2 ** 20, "a base of three parts or more");
  createFileBackup(`${root}/served`, { version: 9, path: database });
  const server = startServer(`${root}/served`);
  try {
    const restored = `${root}/restored.sqlite3`;
    const output = new BufferedOutput();
    assertEquals(await restore([server.url, restored], output), 0, output.transcript);
    assertEquals(dumpDatabase(restored), dumpDatabase(database));
  } finally {
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("init over wire v1 of a database of several MiB: sent from a file in chunks, restored equal", async () => {
  await withTestServer(async (server, root) => {
    const database = blobDatabase(`${root}/node.sqlite3`, 1000);
    const backend = await SocketBackend.connect(server.url);
    await backend.storeSnapshotFile(9, database, root);
    backend.close();
    const sent = server.logs.join("\n").match(/SNAPSHOT 9 \((\d+) bytes deflated\)/);
    assert(sent && Number(sent[1]) > 3 * 2 ** 20, "more than three chunks of 1 MiB");
    const restored = `${root}/restored.sqlite3`;
    const output = new BufferedOutput();
    assertEquals(await restore([server.url, restored], output), 0, output.transcript);
    assertEquals(Deno.readFileSync(restored), Deno.readFileSync(database));
  });
});

Deno.test("the plugin names the server's version once it knows it, not before", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-start-" });
  const first = startServer(`${root}/served`);
  const dir = makeNodeDir("restart");
  let lightningd: FakeLightningd | undefined;
  let second: ReturnType<typeof startServer> | undefined;
  try {
    assertEquals(await init([first.url, "--lightning-dir", dir], new BufferedOutput()), 0);
    const port = first.server.port;
    await first.server.close();
    // lightningd's init comes while the server is down: the plugin is still connecting.
    lightningd = FakeLightningd.spawn({ lightningDir: dir });
    await lightningd.getmanifest();
    assertEquals((await lightningd.init()).result, {});
    second = startServer(`${root}/served`, port);
    const started = () => lightningd!.logs.find((l) => l.message.startsWith("backing up to"));
    while (started() === undefined) await new Promise((r) => setTimeout(r, 20));
    assertEquals(started()!.message, `backing up to ${first.url} at version 15`);
    assertEquals((await lightningd.stop()).code, 0);
  } finally {
    await lightningd?.kill().catch(() => {});
    await second?.server.close();
    removeNodeDir(dir);
    Deno.removeSync(root, { recursive: true });
  }
});
