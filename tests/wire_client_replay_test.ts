/**
 * Our client sends what the recorded Python client sent (tests/fixtures/wire-v1), against a
 * server that answers with the recorded replies: the same packets, byte for byte outside
 * zlib payloads, and the same statements and snapshots inside them.
 */
import { assertEquals } from "./support/assert.ts";
import { exchanges, recordedSession, WIRE_FIXTURES } from "./support/wire_fixtures.ts";
import { ScriptedServer, type ScriptOptions } from "./support/scripted_server.ts";
import { assertSamePacket } from "./support/wire_server.ts";
import { dumpDatabase } from "./support/dump.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { BackupPlugin } from "../lib/plugin/backup_plugin.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { decodeChange, decodeSnapshot, PacketType } from "../lib/wire/packets.ts";
import type { Change } from "../lib/backends/backend.ts";

const FAST = { ...DEFAULT_RETRY_POLICY, retryDelayMs: 10, timeoutMs: 5000 };

async function withScript(
  session: string,
  options: ScriptOptions,
  conns: number[],
  body: (server: ScriptedServer) => Promise<void>,
): Promise<void> {
  const recorded = recordedSession(session);
  const server = new ScriptedServer(
    conns.map((n) => exchanges(recorded.find((c) => c.conn === n)!)),
    options,
  );
  try {
    await body(server);
  } finally {
    await server.close();
  }
  // What each connection of ours sent equals what the recorded client sent on it.
  for (const [i, n] of conns.entries()) {
    const expected = exchanges(recorded.find((c) => c.conn === n)!).map((e) => e.request);
    assertEquals(server.received[i]?.length, expected.length, `${session} conn ${n}`);
    for (const [j, bytes] of server.received[i].entries()) {
      const packet = { type: bytes[0], payload: bytes.subarray(5) };
      assertSamePacket(packet, expected[j], `${session} conn ${n} packet ${j}`);
    }
  }
}

/** The changes a recorded client sent on connection `conn`. */
function recordedChanges(session: string, conn: number): Change[] {
  const recorded = recordedSession(session).find((c) => c.conn === conn)!;
  return exchanges(recorded)
    .filter((e) => e.request[0] === PacketType.Change)
    .map((e) => decodeChange({ type: 1, payload: e.request.subarray(5) }, 1 << 30));
}

Deno.test("01: init of a node with a database: REQ_METADATA, then one SNAPSHOT sent from a file", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "wire-client-" });
  try {
    const sent = exchanges(recordedSession("01-init-snapshot")[0])
      .find((e) => e.request[0] === PacketType.Snapshot)!.request;
    const { version, database } = decodeSnapshot(
      { type: PacketType.Snapshot, payload: sent.subarray(5) },
      1 << 30,
    );
    Deno.writeFileSync(`${tmp}/lightningd.sqlite3`, database);
    await withScript("01-init-snapshot", {}, [1], async (server) => {
      const backend = await SocketBackend.connect(server.url, { policy: FAST });
      await backend.storeSnapshotFile(version, `${tmp}/lightningd.sqlite3`, tmp);
      assertEquals(backend.state().version, 36);
      backend.close();
    });
    // Its deflated copy went with it.
    assertEquals([...Deno.readDirSync(tmp)].map((e) => e.name), ["lightningd.sqlite3"]);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("02: the plugin's connection: REQ_METADATA, then 473 changes, each after its ACK", async () => {
  await withScript("02-activity", {}, [2], async (server) => {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    for (const change of recordedChanges("02-activity", 2)) await backend.append(change);
    assertEquals(backend.state().version, 471);
    backend.close();
  });
});

Deno.test("03: a node one change behind: REWIND to prev_version, then the new change", async () => {
  await withScript("03-rewind", {}, [1], async (server) => {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    const logs: string[] = [];
    const answers: unknown[] = [];
    const plugin = new BackupPlugin({
      backend,
      send: (message) => {
        if ("method" in message && message.method === "log") {
          logs.push((message.params as { message: string }).message);
        } else answers.push((message as { result?: unknown }).result);
      },
      now: () => performance.now(),
    });
    for (const [i, change] of recordedChanges("03-rewind", 1).entries()) {
      await plugin.handle({
        jsonrpc: "2.0",
        id: i,
        method: "db_write",
        params: { data_version: change.version, writes: change.statements },
      }, performance.now());
    }
    assertEquals(
      logs[0],
      "dropping change 553 from the backup: the node stopped before committing it",
    );
    assertEquals(answers.every((a) => (a as { result: string }).result === "continue"), true);
    plugin.close();
  });
});

Deno.test("05: restore: REQ_METADATA, RESTORE; the result is the node's database", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "wire-client-" });
  try {
    await withScript("05-restore", {}, [1], async (server) => {
      const reader = await SocketBackupReader.fetch(server.url);
      try {
        restoreBackup(reader, `${tmp}/restored.sqlite3`);
      } finally {
        reader.close();
      }
    });
    assertEquals(
      dumpDatabase(`${tmp}/restored.sqlite3`),
      dumpDatabase(`${WIRE_FIXTURES}05-restore/lightningd.sqlite3`),
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("06: the server dies under a change: reconnect, METADATA, the same change again", async () => {
  const first = exchanges(recordedSession("06-reconnect")[0]);
  const cut = { conn: 0, step: first.length - 1 };
  await withScript("06-reconnect", { cut }, [1, 2], async (server) => {
    const logs: string[] = [];
    const backend = await SocketBackend.connect(server.url, {
      policy: FAST,
      log: (level, message) => logs.push(`${level}: ${message}`),
    });
    const changes = [...recordedChanges("06-reconnect", 1), ...recordedChanges("06-reconnect", 2)];
    // The change sent twice on the wire is one change to the plugin.
    const unique = changes.filter((c, i) => i === 0 || c.version !== changes[i - 1].version);
    for (const change of unique) await backend.append(change);
    assertEquals(backend.state().connection?.reconnects, 1);
    assertEquals(logs.at(-1), "info: the server lacks change 514: sending it again");
    backend.close();
  });
});
