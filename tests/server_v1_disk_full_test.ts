/**
 * Wire v1 on a server whose disk is full, on small tmpfs mounts. A SNAPSHOT that does not fit
 * is read to its end, answered NACK and leaves nothing; the connection goes on; one that will be
 * refused is not written at all. A RESTORE
 * whose spool runs out of room part way sends the snapshot from memory instead, whole and
 * equal. Needs root to mount a tmpfs; elsewhere it says so and skips.
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { RawClient, startServer } from "./support/wire_server.ts";
import { mountTmpfs, run } from "./support/tmpfs.ts";
import {
  changeVersion,
  decodeMetadata,
  decodeSnapshot,
  decodeVersion,
  encodeChange,
  encodeSnapshot,
  PacketType,
} from "../lib/wire/packets.ts";
import { DatabaseSync } from "node:sqlite";

const REQ_METADATA = Uint8Array.of(PacketType.ReqMetadata, 0, 0, 0, 0);
const RESTORE = Uint8Array.of(PacketType.Restore, 0, 0, 0, 0);
const MiB = 1 << 20;

/** The bytes of a SQLite database of about `bytes` that does not compress. */
function randomDatabase(bytes: number): Uint8Array {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-random-db-" });
  try {
    const db = new DatabaseSync(`${dir}/node.sqlite3`);
    db.exec("CREATE TABLE pad (b BLOB)");
    const insert = db.prepare("INSERT INTO pad VALUES (?)");
    db.exec("BEGIN");
    for (let done = 0; done < bytes; done += 4000) {
      insert.run(crypto.getRandomValues(new Uint8Array(4000)));
    }
    db.exec("COMMIT");
    db.close();
    return Deno.readFileSync(`${dir}/node.sqlite3`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** The names of the temporary files in the backup at `dir`. */
function temporaries(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((name) => name.endsWith(".tmp"));
}

/** Runs `body` with our server on a backup in a tmpfs of `size` bytes at `work`/small. */
async function onSmallDisk(
  size: number,
  body: (server: ReturnType<typeof startServer>, backup: string, mount: string) => Promise<void>,
): Promise<void> {
  const work = Deno.makeTempDirSync({ prefix: "cln-backup-v1-full-" });
  const mount = `${work}/small`;
  Deno.mkdirSync(mount);
  try {
    if (!mountTmpfs(mount, size)) return;
    const server = startServer(`${mount}/backup`);
    try {
      await body(server, `${mount}/backup`, mount);
    } finally {
      await server.server.close();
    }
  } finally {
    run("umount", [mount]);
    Deno.removeSync(work, { recursive: true });
  }
}

Deno.test("a v1 SNAPSHOT that does not fit the disk is answered NACK and leaves nothing", async () => {
  const database = randomDatabase(3 * MiB);
  await onSmallDisk(MiB, async ({ server, logs }, backup) => {
    const client = await RawClient.connect(server.port);
    await client.send(encodeSnapshot(3, database, 1));
    const nack = (await client.next())!;
    assertEquals([nack.type, decodeVersion(nack)], [PacketType.Nack, 0]);
    assertMatch(logs.join("\n"), /refused version 3: cannot store it: No space left on device/);
    // The packet was read to its end: the connection goes on.
    await client.send(REQ_METADATA);
    assertEquals(decodeMetadata((await client.next())!).version, 0);
    client.close();
    assertEquals(temporaries(backup), []);
  });
});

Deno.test("a v1 RESTORE whose spool fills the disk part way sends the snapshot from memory", async () => {
  const database = randomDatabase(3 * MiB);
  await onSmallDisk(16 * MiB, async ({ server }, backup, mount) => {
    const client = await RawClient.connect(server.port);
    await client.send(encodeSnapshot(3, database, 1));
    assertEquals((await client.next())!.type, PacketType.Ack);
    // Fill the disk, then free 1.5 MiB: room for one of the spool's 1 MiB chunks, not two.
    const filler = Deno.openSync(`${mount}/filler`, { write: true, create: true });
    let filled = 0;
    try {
      for (;;) filled += filler.writeSync(new Uint8Array(256 * 1024));
    } catch (error) {
      if (!(error instanceof Error && /No space left/.test(error.message))) throw error;
    }
    filler.truncateSync(filled - 1.5 * MiB);
    filler.close();
    await client.send(RESTORE);
    assertEquals(decodeSnapshot((await client.next())!, 1 << 30), { version: 3, database });
    assertEquals((await client.next())!.type, PacketType.Done);
    client.close();
    assertEquals(temporaries(backup), []);
  });
});

Deno.test("a v1 SNAPSHOT that will be refused is not written: the refusal says why, not the disk", async () => {
  const database = randomDatabase(3 * MiB);
  await onSmallDisk(MiB, async ({ server, logs }, backup) => {
    const client = await RawClient.connect(server.port);
    await client.send(encodeChange(1, ["UPDATE vars SET intval = 1"]));
    assertEquals((await client.next())!.type, PacketType.Ack);
    // Larger than the disk: written, it would have failed for want of room.
    await client.send(encodeSnapshot(3, database, 1));
    const nack = (await client.next())!;
    assertEquals([nack.type, decodeVersion(nack)], [PacketType.Nack, 1]);
    assertMatch(logs.join("\n"), /refused version 3: a snapshot goes into an empty backup only/);
    client.close();
    assertEquals(temporaries(backup), []);
  });
});

Deno.test("a change refused on a full disk goes in once room is made, with no server restart", async () => {
  await onSmallDisk(MiB, async ({ server, logs }, _backup, mount) => {
    // Text that does not compress, so a change takes its size on the disk.
    const note = () =>
      `INSERT INTO notes VALUES ('${crypto.getRandomValues(new Uint8Array(3000)).join()}')`;
    const node = await RawClient.connect(server.port);
    await node.send(encodeChange(1, [note()]));
    assertEquals((await node.next())!.type, PacketType.Ack);
    const filler = Deno.openSync(`${mount}/filler`, { write: true, create: true });
    try {
      for (;;) filler.writeSync(new Uint8Array(4096));
    } catch (error) {
      if (!(error instanceof Error && /No space left/.test(error.message))) throw error;
    }
    filler.close();
    await node.send(encodeChange(2, [note()]));
    const nack = (await node.next())!;
    assertEquals([nack.type, decodeVersion(nack)], [PacketType.Nack, 1]);
    assertMatch(logs.join("\n"), /refused version 2: cannot store it: .*No space left on device/);
    // The node stops on the NACK; room is made, and the node started again goes on.
    node.close();
    Deno.removeSync(`${mount}/filler`);
    const restarted = await RawClient.connect(server.port);
    await restarted.send(REQ_METADATA);
    assertEquals(decodeMetadata((await restarted.next())!).version, 1);
    await restarted.send(encodeChange(2, [note()]));
    const ack = (await restarted.next())!;
    assertEquals([ack.type, decodeVersion(ack)], [PacketType.Ack, 2]);
    await restarted.send(REQ_METADATA);
    assertEquals(decodeMetadata((await restarted.next())!).version, 2);
    await restarted.send(RESTORE);
    const restored: number[] = [];
    for (let packet = (await restarted.next())!; packet.type !== PacketType.Done;) {
      restored.push(changeVersion(packet));
      packet = (await restarted.next())!;
    }
    assertEquals(restored, [1, 2]);
    restarted.close();
  });
});
