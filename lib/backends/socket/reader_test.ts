import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { ScriptedServer } from "../../../tests/support/scripted_server.ts";
import { concat } from "../../bytes/concat.ts";
import { prng } from "../../../tests/support/prng.ts";
import {
  encodeChange,
  encodeMetadata,
  encodePacket,
  encodeSnapshot,
  PacketType,
} from "../../wire/packets.ts";
import { SNAPSHOT_PART_BYTES } from "../file/create.ts";
import type { BackupEntry } from "../backend.ts";
import { SocketBackupReader } from "./reader.ts";
import { restoreBackup } from "../../backup/restore.ts";
import { PacketReader } from "../../wire/packet_reader.ts";
import { closeQuietly, writeFully } from "../../wire/conn_io.ts";

/** Database bytes over three parts: random, so that they stay large once deflated. */
function database(): Uint8Array {
  const random = prng(11);
  return new Uint8Array(2 * SNAPSHOT_PART_BYTES + 12_345).map(() => random() * 256);
}

/** A v1 server whose RESTORE answer is `snapshot` (a SNAPSHOT packet) and two changes. */
function v1Server(snapshot: Uint8Array): ScriptedServer {
  const changes = [encodeChange(6, ["INSERT INTO t VALUES (1)"]), encodeChange(7, ["DELETE"])];
  return new ScriptedServer([[
    {
      request: encodePacket(PacketType.ReqMetadata),
      replies: [encodeMetadata({ version: 7, prevVersion: 6, versionCount: 3 })],
    },
    {
      request: encodePacket(PacketType.Restore),
      replies: [snapshot, ...changes, encodePacket(PacketType.Done)],
    },
  ]]);
}

/**
 * The entries of the backup `server` serves; `sizes` gets each snapshot part's length and
 * `buffers` the size of the memory each part is a view of.
 */
async function readEntries(
  server: ScriptedServer,
  sizes: number[],
  buffers: number[] = [],
): Promise<BackupEntry[]> {
  const reader = await SocketBackupReader.fetch(server.url, 5_000, undefined);
  try {
    const entries: BackupEntry[] = [];
    for (const entry of reader.entries()) {
      if (entry.kind !== "snapshot-part") {
        entries.push(entry);
        continue;
      }
      // A part's bytes hold until the next entry: keep a copy.
      sizes.push(entry.bytes.length);
      buffers.push(entry.bytes.buffer.byteLength);
      entries.push({ ...entry, bytes: entry.bytes.slice() });
    }
    return entries;
  } finally {
    reader.close();
  }
}

Deno.test("a v1 restore's snapshot comes inflated part by part, never whole", async () => {
  const db = database();
  const server = v1Server(encodeSnapshot(5, db));
  try {
    const [sizes, buffers]: number[][] = [[], []];
    const entries = await readEntries(server, sizes, buffers);
    assertEquals(sizes, [SNAPSHOT_PART_BYTES, SNAPSHOT_PART_BYTES, 12_345]);
    assert(Math.max(...buffers) < db.length, `parts are views of ${buffers} bytes`);
    const parts = entries.flatMap((e) => e.kind === "snapshot-part" ? [e.bytes] : []);
    assertEquals(concat(parts), db);
    assertEquals(
      entries.filter((e) => e.kind !== "snapshot-part"),
      [
        { kind: "snapshot-end", version: 5, totalBytes: db.length },
        { kind: "change", version: 6, statements: ["INSERT INTO t VALUES (1)"] },
        { kind: "change", version: 7, statements: ["DELETE"] },
      ],
    );
  } finally {
    await server.close();
  }
});

Deno.test("a v1 restore to a version below the snapshot names the versions held", async () => {
  const server = v1Server(encodeSnapshot(5, database()));
  const dir = Deno.makeTempDirSync();
  const reader = await SocketBackupReader.fetch(server.url, 5_000, undefined);
  try {
    // Not "up to 5", which 4 is: nothing older than the snapshot is held.
    const error = await assertRejects(() =>
      restoreBackup(reader, `${dir}/restored.sqlite3`, { toVersion: 4 })
    );
    assertEquals(
      error.message,
      "Cannot restore backup to version 4: it holds versions 5 to 7: choose --to-version " +
        "from 5 to 7",
    );
  } finally {
    reader.close();
    Deno.removeSync(dir, { recursive: true });
    await server.close();
  }
});

Deno.test("a v1 restore's damaged or cut snapshot is an error that names it", async () => {
  const good = encodeSnapshot(5, database());
  const damaged = good.slice();
  damaged[good.length - 1000] ^= 0x40;
  // Cut inside the deflated stream, the packet's length shortened to match.
  const cut = good.slice(0, good.length - 2000);
  new DataView(cut.buffer).setUint32(1, cut.length - 5);
  for (const snapshot of [damaged, cut]) {
    const server = v1Server(snapshot);
    try {
      const error = await assertRejects(() => readEntries(server, []), /SNAPSHOT 5 does not/);
      assert(error.message.includes("decompress"));
    } finally {
      await server.close();
    }
  }
});

/**
 * A v1 server that sends its RESTORE answer slowly: `snapshot` in `pieces` writes `gapMs`
 * apart, then DONE (its backup is the snapshot alone, at version 5).
 */
function slowServer(snapshot: Uint8Array, pieces: number, gapMs: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    try {
      const reader = new PacketReader(conn);
      await reader.next();
      await writeFully(conn, encodeMetadata({ version: 5, prevVersion: 0, versionCount: 1 }));
      await reader.next();
      const size = Math.ceil(snapshot.length / pieces);
      for (let at = 0; at < snapshot.length; at += size) {
        await writeFully(conn, snapshot.subarray(at, at + size));
        await new Promise((resolve) => setTimeout(resolve, gapMs));
      }
      await writeFully(conn, encodePacket(PacketType.Done));
      await reader.next();
    } catch {
      // The client gave up.
    } finally {
      closeQuietly(conn);
    }
  })();
  return {
    url: `socket:127.0.0.1:${listener.addr.port}`,
    async close() {
      listener.close();
      await served;
    },
  };
}

Deno.test("a v1 snapshot slower than the timeout arrives, as long as its bytes keep coming", async () => {
  const db = database();
  const server = slowServer(encodeSnapshot(5, db), 8, 150);
  try {
    // 8 pieces 150 ms apart: 1.2 s in all, against a timeout of 0.5 s.
    const reader = await SocketBackupReader.fetch(server.url, 500, undefined);
    try {
      assertEquals(reader.describe().lastVersion, 5);
      let at = 0;
      for (const entry of reader.entries()) {
        if (entry.kind !== "snapshot-part") continue;
        assertEquals(entry.bytes, db.subarray(at, at + entry.bytes.length));
        at += entry.bytes.length;
      }
      assertEquals(at, db.length);
    } finally {
      reader.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("a v1 server that stops sending mid-snapshot times out", async () => {
  const server = slowServer(encodeSnapshot(5, database()), 2, 2_000);
  try {
    await assertRejects(
      () => SocketBackupReader.fetch(server.url, 500, undefined),
      /timed out after 0.5 s/,
    );
  } finally {
    await server.close();
  }
});
