/**
 * Our server answers the recorded Python clients as the Python server did (see
 * tests/fixtures/wire-v1/README.md), byte for byte outside zlib payloads, and the backup it
 * keeps restores to the recorded node's database.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { exchanges, recordedSession, WIRE_FIXTURES } from "./support/wire_fixtures.ts";
import {
  assertSamePacket,
  RawClient,
  startServer,
  storageFromV1,
  type TestServer,
} from "./support/wire_server.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { dumpDatabase } from "./support/dump.ts";
import { DatabaseSync } from "node:sqlite";
import { decodeChange, decodeCompactResult, packetName, PacketType } from "../lib/wire/packets.ts";

/** Sends each request of a recorded connection and checks the replies, `from` to `to`. */
async function replay(
  server: TestServer,
  session: string,
  conn: number,
  range: { from?: number; to?: number } = {},
): Promise<void> {
  const recorded = recordedSession(session).find((c) => c.conn === conn)!;
  const steps = exchanges(recorded).slice(range.from ?? 0, range.to);
  const client = await RawClient.connect(server.server.port);
  try {
    for (const [i, { request, replies }] of steps.entries()) {
      await client.send(request);
      for (const [j, reply] of replies.entries()) {
        assertSamePacket(
          await client.next(),
          reply,
          `${session} conn ${conn} step ${i} reply ${j}`,
        );
      }
    }
  } finally {
    client.close();
  }
}

async function withStorage(
  from: string | undefined,
  body: (dir: string, start: () => TestServer) => Promise<void>,
): Promise<void> {
  const tmp = Deno.makeTempDirSync({ prefix: "wire-server-" });
  const dir = `${tmp}/backup`;
  try {
    if (from) await storageFromV1(`${WIRE_FIXTURES}${from}`, dir);
    await body(dir, () => startServer(dir));
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}

function assertRestoresTo(dir: string, database: string, fix?: string): void {
  const out = `${dir}-restored.sqlite3`;
  restoreBackup(new FileBackupReader(`file://${dir}`, dir), out);
  const expected = `${dir}-expected.sqlite3`;
  Deno.copyFileSync(`${WIRE_FIXTURES}${database}`, expected);
  if (fix) {
    const db = new DatabaseSync(expected);
    db.exec(fix);
    db.close();
  }
  assertEquals(dumpDatabase(out), dumpDatabase(expected));
}

Deno.test("01 init: METADATA of an empty backup, SNAPSHOT acknowledged, restores the node", async () => {
  await withStorage(undefined, async (dir, start) => {
    const server = start();
    await replay(server, "01-init-snapshot", 1);
    await server.server.close();
    assertRestoresTo(dir, "01-init-snapshot/lightningd.sqlite3");
  });
});

Deno.test("02 activity: init, then 473 CHANGE/ACK; the backup restores the node", async () => {
  await withStorage("02-activity/server-before.dbak", async (dir, start) => {
    const server = start();
    await replay(server, "02-activity", 1);
    await replay(server, "02-activity", 2);
    await server.server.close();
    assertRestoresTo(dir, "02-activity/lightningd.sqlite3");
  });
});

Deno.test("03 rewind: REWIND to prev_version is acknowledged, the changes after it too", async () => {
  await withStorage("06-reconnect/server.dbak", async (dir, start) => {
    const server = start();
    await replay(server, "03-rewind", 1);
    await server.server.close();
    // The recording lowered data_version in a database that kept change 553's row; a node
    // that crashed before committing 553 has no such row, and the rewind dropped it.
    assertRestoresTo(
      dir,
      "03-rewind/lightningd.sqlite3",
      "DELETE FROM datastore WHERE key = x'7265636f6e6e6563740030303539'",
    );
  });
});

Deno.test("04 compact: COMPACT on the writer's connection, answered with COMPACT_RES; the rest goes on", async () => {
  await withStorage("02-activity/server.dbak", async (dir, start) => {
    const server = start();
    const steps = exchanges(recordedSession("04-compact")[0]);
    const client = await RawClient.connect(server.server.port);
    let lastChange = 0;
    try {
      for (const [i, { request, replies }] of steps.entries()) {
        await client.send(request);
        if (request[0] === PacketType.Change) {
          lastChange = decodeChange({ type: request[0], payload: request.subarray(5) }, 1 << 30)
            .version;
        }
        if (request[0] !== PacketType.Compact) {
          for (const [j, reply] of replies.entries()) {
            assertSamePacket(await client.next(), reply, `04-compact step ${i} reply ${j}`);
          }
          continue;
        }
        // Sizes differ from the Python server's (another format); the fields do not, and
        // ours follow Python's.
        const answer = (await client.next())!;
        assertEquals(packetName(answer.type), packetName(PacketType.CompactRes));
        const ours = decodeCompactResult(answer);
        const theirs = decodeCompactResult({
          type: replies[0][0],
          payload: replies[0].subarray(5),
        });
        assertEquals(Object.keys(ours).slice(0, 2), Object.keys(theirs));
        assertEquals(Object.keys(ours.before), Object.keys(theirs.before));
        assertEquals(Object.keys(ours.after), Object.keys(theirs.after));
        // version_count is counted as Python counts its records (each change, a snapshot
        // once): the same history holds as many before. After, ours holds one more: the
        // change at the base's version stays beside the newest one (the live log keeps both).
        assertEquals(ours.before.version_count, theirs.before.version_count);
        assertEquals(ours.after.version_count, theirs.after.version_count + 1);
        // Folded up to the version before the newest change, which stays on top to rewind;
        // the live log holding the folded changes goes once it is sealed.
        assertEquals(ours.base_version, lastChange - 1, JSON.stringify(ours));
        assert((ours.versions_folded as number) > 0, JSON.stringify(ours));
      }
    } finally {
      client.close();
    }
    await server.server.close();
    assert(server.logs.some((l) => /: compacted in .* folded into base \d+/.test(l)));
    assertRestoresTo(dir, "04-compact/lightningd.sqlite3");
  });
});

Deno.test("05 restore: SNAPSHOT, every CHANGE, then DONE, as the Python server sent them", async () => {
  await withStorage("04-compact/server.dbak", async (_dir, start) => {
    const server = start();
    await replay(server, "05-restore", 1);
    await server.server.close();
  });
});

Deno.test("06 reconnect: the server dies before a change; after a restart it gets it again", async () => {
  await withStorage("05-restore/server.dbak", async (dir, start) => {
    let server = start();
    const steps = exchanges(recordedSession("06-reconnect")[0]);
    // The last request reached a dead server: it got no answer, and is not sent here.
    assertEquals(steps.at(-1)!.replies, []);
    await replay(server, "06-reconnect", 1, { to: steps.length - 1 });
    await server.server.close();
    server = start();
    await replay(server, "06-reconnect", 2);
    await server.server.close();
    assertRestoresTo(dir, "06-reconnect/lightningd.sqlite3");
  });
});

Deno.test("07 probe: the v1 answers, and where ours differ on purpose", async () => {
  await withStorage("07-probe/server-before.dbak", async (_dir, start) => {
    const server = start();
    const steps = exchanges(recordedSession("07-probe")[0]);
    // Empty change, change, wrong REWIND (NACK with the current version), REWIND, as recorded.
    await replay(server, "07-probe", 1, { to: 5 });
    const client = await RawClient.connect(server.server.port);
    const ask = async (request: Uint8Array) => {
      await client.send(request);
      return await client.next();
    };
    const metadata = (version: number, prev: number, count: number) => {
      const p = new Uint8Array(20);
      const v = new DataView(p.buffer);
      v.setUint32(0, 1);
      v.setUint32(4, version);
      v.setUint32(8, prev);
      v.setBigUint64(12, BigInt(count));
      return p;
    };
    // The v1 server keeps a rewind in memory and still counts the dropped record (1, 0, 2);
    // ours drops it from disk, so the count is 1.
    assertEquals((await ask(steps[5].request))?.payload, metadata(1, 0, 1));
    // A second REWIND is acknowledged with the unchanged version, as in v1.
    assertSamePacket(await ask(steps[6].request), steps[6].replies[0], "second REWIND");
    // RESTORE: the v1 server re-read its file and undid the rewind (v1 and v2); ours sends
    // what the backup holds after it: v1 only.
    await client.send(steps[7].request);
    assertSamePacket(await client.next(), steps[7].replies[0], "RESTORE v1");
    assertEquals((await client.next())?.type, PacketType.Done);
    // Two connections at once: the second is answered while the first stays open.
    const second = await RawClient.connect(server.server.port);
    await second.send(Uint8Array.of(4, 0, 0, 0, 0));
    assertEquals((await second.next())?.payload, metadata(1, 0, 1));
    // COMPACT of this tiny backup: the Python server's compaction failed and closed the
    // connection without an answer; ours has nothing to fold, and says so.
    const compacted = await ask(steps[9].request);
    assertEquals(steps[9].replies, []);
    assertEquals(compacted?.type, PacketType.CompactRes);
    assertEquals(decodeCompactResult(compacted!).versions_folded, 0);
    // An unknown type closes the connection without an answer.
    await second.send(Uint8Array.of(0x0c, 0, 0, 0, 0));
    assertEquals(await second.next(), null);
    client.close();
    second.close();
    await server.server.close();
    assertMatch(server.logs.join("\n"), /unknown packet type 0x0c/);
  });
});
