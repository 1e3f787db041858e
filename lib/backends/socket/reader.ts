/**
 * Reading a `socket:` backup (restore, status, verify): RESTORE streams every record, which
 * is spooled into a temporary cln-backup directory as it arrives, so nothing holds the whole
 * backup in memory; the directory is then read like any file backup and removed on close.
 *
 * @module
 */
import type { BackupDescription, BackupEntry, BackupReader } from "../backend.ts";
import { createFileBackup } from "../file/create.ts";
import { FileBackend } from "../file/writer.ts";
import { FileBackupReader } from "../file/reader.ts";
import {
  decodeChange,
  decodeMetadata,
  decodeSnapshot,
  encodePacket,
  packetName,
  PacketType,
} from "../../wire/packets.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "../../wire/packet_reader.ts";
import { WireConnection } from "./connection.ts";
import { RemoteBackupError, socketUrl } from "./backend.ts";
import { DEFAULT_RETRY_POLICY } from "./options.ts";

export class SocketBackupReader implements BackupReader {
  #spool: FileBackupReader;

  private constructor(readonly url: string, readonly tmp: string) {
    this.#spool = new FileBackupReader(url, `${tmp}/backup`);
  }

  /** Fetches the backup at `url` from its server. */
  static async fetch(
    url: string,
    timeoutMs = DEFAULT_RETRY_POLICY.timeoutMs,
  ): Promise<SocketBackupReader> {
    const conn = await WireConnection.open(socketUrl(url), timeoutMs);
    const tmp = Deno.makeTempDirSync({ prefix: "cln-backup-fetch-" });
    try {
      await spool(conn, `${tmp}/backup`, url);
      return new SocketBackupReader(url, tmp);
    } catch (error) {
      Deno.removeSync(tmp, { recursive: true });
      throw error;
    } finally {
      conn.close();
    }
  }

  describe(): BackupDescription {
    return { ...this.#spool.describe(), url: this.url, format: "cln-backup server (wire v1)" };
  }

  entries(toVersion?: number): Iterable<BackupEntry> {
    return this.#spool.entries(toVersion);
  }

  close(): void {
    Deno.removeSync(this.tmp, { recursive: true });
  }
}

/** REQ_METADATA, RESTORE, and every record until DONE, into a new backup at `dir`. */
async function spool(conn: WireConnection, dir: string, url: string): Promise<void> {
  const metadata = decodeMetadata(
    await expect(conn, encodePacket(PacketType.ReqMetadata), PacketType.Metadata),
  );
  await conn.send(encodePacket(PacketType.Restore));
  let writer: FileBackend | undefined;
  let last: number | undefined;
  try {
    for (;;) {
      const packet = await conn.receive();
      if (packet.type === PacketType.Done) break;
      if (packet.type === PacketType.Snapshot && writer === undefined) {
        const { version, database } = decodeSnapshot(packet, DEFAULT_MAX_PAYLOAD_BYTES);
        const copy = `${dir}.snapshot`;
        Deno.writeFileSync(copy, database);
        createFileBackup(dir, { version, path: copy });
        Deno.removeSync(copy);
        writer = FileBackend.open(url, dir, { syncOnClose: true });
        last = version;
      } else if (packet.type === PacketType.Change) {
        if (!writer) {
          createFileBackup(dir);
          writer = FileBackend.open(url, dir, { syncOnClose: true });
        }
        const change = decodeChange(packet, DEFAULT_MAX_PAYLOAD_BYTES);
        await writer.append(change);
        last = change.version;
      } else {
        throw new RemoteBackupError(
          `Cannot read backup: the server sent ${packetName(packet.type)} during a restore`,
        );
      }
    }
  } finally {
    writer?.close();
  }
  if (!writer) createFileBackup(dir);
  // The Python client's check: the stream ends at the version METADATA announced.
  if ((last ?? 0) !== metadata.version) {
    throw new RemoteBackupError(
      `Cannot read backup: the server announced version ${metadata.version} but sent records ` +
        `up to ${last ?? "none"}: try again, and check the server's log`,
    );
  }
}

async function expect(conn: WireConnection, request: Uint8Array, type: PacketType) {
  const reply = await conn.request(request);
  if (reply.type !== type) {
    throw new RemoteBackupError(
      `Cannot read backup: the server answered ${packetName(reply.type)}, not ` +
        `${packetName(type)}: is it a backup server?`,
    );
  }
  return reply;
}
