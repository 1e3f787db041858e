import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { ScriptedServer } from "../../../tests/support/scripted_server.ts";
import { bumpStatement } from "../../../tests/support/statements.ts";
import {
  changeVersion,
  encodeChange,
  encodeMetadata,
  encodePacket,
  encodeSnapshot,
  encodeVersionPacket,
  PacketType,
} from "../../wire/packets.ts";
import { RemoteBackupError, SocketBackend } from "./backend.ts";
import { withServer } from "../../../tests/support/v2_server.ts";
import { PacketReader } from "../../wire/packet_reader.ts";
import { DEFAULT_RETRY_POLICY } from "./options.ts";

const FAST = { ...DEFAULT_RETRY_POLICY, retryDelayMs: 5, timeoutMs: 2000 };
const REQ = encodePacket(PacketType.ReqMetadata);
const metadata = (version: number, prevVersion: number, versionCount: number) =>
  encodeMetadata({ version, prevVersion, versionCount });
const pragma = (version: number) => ({ version, statements: ["PRAGMA foreign_keys = OFF;"] });

/** A server at (5, 4, 5) that drops the connection on the first write; then says `after`. */
function droppingServer(write: Uint8Array, after: Uint8Array[]): ScriptedServer {
  return new ScriptedServer([
    [{ request: REQ, replies: [metadata(5, 4, 5)] }, { request: write, replies: [] }],
    [{ request: REQ, replies: after }, {
      request: write,
      replies: [encodeVersionPacket(PacketType.Ack, 5)],
    }],
  ], { cut: { conn: 0, step: 1 } });
}

Deno.test("after a reconnect, a server at neither version stops the writes, saying what to do", async () => {
  const change = { version: 6, statements: [bumpStatement(5)] };
  const server = droppingServer(encodeChange(6, change.statements), [metadata(9, 8, 9)]);
  try {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    await assertRejects(
      () => backend.append(change),
      /after reconnecting, the server's backup is at version 9, neither 5 \(without change 6\) nor 6 \(with it\): .*stop the node/,
    );
    assertEquals(backend.state().connection?.state, "failed");
    await assertRejects(() => backend.append(change), /an earlier write failed/);
    backend.close();
  } finally {
    await server.close();
  }
});

Deno.test("a change repeating the version: the record count tells whether the server has it", async () => {
  const write = encodeChange(5, pragma(5).statements);
  // Same version, one more record: it arrived before the connection broke; nothing is resent.
  let server = droppingServer(write, [metadata(5, 4, 6)]);
  try {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    await backend.append(pragma(5));
    assertEquals(server.received[1].length, 1, "only REQ_METADATA on the new connection");
    assertEquals(backend.state().records, 6);
    backend.close();
  } finally {
    await server.close();
  }
  // Same version, same count: it was lost; it is sent again.
  server = droppingServer(write, [metadata(5, 4, 5)]);
  try {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    await backend.append(pragma(5));
    assertEquals(server.received[1].length, 2, "REQ_METADATA, then the change again");
    assertEquals(backend.state().records, 6);
    backend.close();
  } finally {
    await server.close();
  }
});

Deno.test("a connect refused says to check that the server, or the proxy, runs", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const policy = { ...DEFAULT_RETRY_POLICY, retries: 0 };
  await assertRejects(
    () => SocketBackend.connect(`socket:127.0.0.1:${port}`, { policy }),
    new RegExp(
      `connecting to 127\\.0\\.0\\.1:${port}: .*refused.*: nothing accepts connections ` +
        `there: check that the server runs, and the URL's host and port`,
    ),
  );
  await assertRejects(
    () =>
      SocketBackend.connect(`socket:example.org:9735?proxy=socks5:127.0.0.1:${port}`, { policy }),
    /through the proxy 127\.0\.0\.1:\d+: .*refused.*: check that the proxy the URL names runs/,
  );
});

/**
 * A v1 server as the Python one keeps its backup: version, prev_version and a record count
 * that a rewind leaves as it was. It closes the connection, unanswered, on the first CHANGE
 * that repeats its version.
 */
function pythonLikeServer(version: number, prevVersion: number, versionCount: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const stored: number[] = [];
  let cut = false;
  const serve = async (conn: Deno.Conn) => {
    const reader = new PacketReader(conn);
    const reply = (bytes: Uint8Array) => conn.write(bytes);
    try {
      for (let packet; (packet = await reader.next());) {
        if (packet.type === PacketType.ReqMetadata) {
          await reply(metadata(version, prevVersion, versionCount));
        } else if (packet.type === PacketType.Rewind) {
          [version, prevVersion] = [prevVersion, 0];
          await reply(encodeVersionPacket(PacketType.Ack, version));
        } else if (packet.type === PacketType.Change) {
          const changed = changeVersion(packet);
          if (changed === version && !cut) return void (cut = true);
          [version, prevVersion, versionCount] = [changed, version, versionCount + 1];
          stored.push(changed);
          await reply(encodeVersionPacket(PacketType.Ack, version));
        }
      }
    } catch {
      // The client went away.
    } finally {
      conn.close();
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) serve(conn);
  })();
  return {
    url: `socket:127.0.0.1:${listener.addr.port}`,
    stored,
    close: () => (listener.close(), accepting.catch(() => {})),
  };
}

Deno.test("after a rewind, a change repeating the version lost with its connection is sent again", async () => {
  // One ahead: the node stopped before committing change 5.
  const server = pythonLikeServer(5, 4, 5);
  try {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    await backend.rewind();
    // A PRAGMA hook repeats the version the node holds: 4; its connection is cut.
    await backend.append(pragma(4));
    await backend.append({ version: 5, statements: [bumpStatement(4)] });
    assertEquals(server.stored, [4, 5], "the PRAGMA is stored, then the change after it");
    backend.close();
  } finally {
    await server.close();
  }
});

Deno.test("a backup holding a snapshot alone cannot rewind: a server's prev_version 0 there is not a version to drop back to", async () => {
  // A Python server's METADATA after init's snapshot at 36 (its rewind then refuses).
  const server = new ScriptedServer([[{ request: REQ, replies: [metadata(36, 0, 1)] }]]);
  try {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    assertEquals(backend.state().version, 36);
    assertEquals(backend.state().rewindVersion, undefined);
    backend.close();
  } finally {
    await server.close();
  }
});

Deno.test("a backup holding one change from empty can drop it back to 0: a node killed before committing its first write", async () => {
  const server = new ScriptedServer([[{ request: REQ, replies: [metadata(1, 0, 1)] }]]);
  try {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    assertEquals(backend.state().rewindVersion, 0);
    backend.close();
  } finally {
    await server.close();
  }
});

Deno.test("after storing a snapshot, the backup cannot rewind: no change follows its base", async () => {
  const database = new Uint8Array([1, 2, 3]);
  const server = new ScriptedServer([[
    { request: REQ, replies: [metadata(0, 0, 0)] },
    { request: encodeSnapshot(36, database), replies: [encodeVersionPacket(PacketType.Ack, 36)] },
  ]]);
  try {
    const backend = await SocketBackend.connect(server.url, { policy: FAST });
    await backend.storeSnapshot(36, database);
    assertEquals(backend.state().version, 36);
    assertEquals(backend.state().rewindVersion, undefined);
    backend.close();
  } finally {
    await server.close();
  }
});

Deno.test("a server's error to PLACE is said, not read as a backup without an id", async () => {
  await withServer(async ({ url, nodes, credential }) => {
    // Alice has no backup yet, and the server cannot make one where it goes.
    const backend = await SocketBackend.connect(url, {
      credential: credential("alice"),
      policy: FAST,
    });
    try {
      Deno.writeTextFileSync(nodes.backupDir("alice"), "not a backup directory");
      const error = await assertRejects(
        () => backend.backupIdHex(),
        /^the server at 127\.0\.0\.1:\d+ \(wire v2, node alice\) refused to say its backup's id \(PLACE\): the server cannot open node alice's backup: see the server's log; until it does, which backup it holds cannot be checked: fix what it says \(or ask its operator\), then try again$/,
      );
      assert(error instanceof RemoteBackupError, String(error));
    } finally {
      backend.close();
    }
  });
});
