/**
 * Reading a `socket:` backup (restore, status, verify). Over wire v2 it is a copy of the
 * backup's files (copy_reader.ts). Over v1, RESTORE streams every record, whose
 * packets are spooled as they arrive, untouched, into a temporary file, so nothing holds the
 * whole backup in memory and a slow reader never stalls the server. The file is then read
 * packet by packet, each decompressed when it is reached (a snapshot part by part), and
 * removed on close.
 *
 * @module
 */
import type { BackupDescription, BackupEntry, BackupReader } from "../backend.ts";
import { SNAPSHOT_PART_BYTES } from "../file/create.ts";
import { writeAll } from "../../fs/durable.ts";
import { readFull } from "../../fs/read_full.ts";
import {
  decodeChange,
  decodeMetadata,
  encodeHeader,
  encodePacket,
  HEADER_BYTES,
  packetName,
  PacketType,
  WireError,
} from "../../wire/packets.ts";
import { InflateError, inflateParts, MAX_DATABASE_BYTES } from "../../wire/inflate.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES, type PayloadSink } from "../../wire/packet_reader.ts";
import { WireConnection } from "./connection.ts";
import { RemoteBackupError, socketUrl } from "./backend.ts";
import { DEFAULT_RETRY_POLICY } from "./options.ts";
import { CopiedBackupReader } from "./copy_reader.ts";
import type { NodeCredential } from "./credential.ts";
import { makeScratchDir, removeScratchDir } from "../../fs/scratch_dir.ts";

/** What the spooled stream holds, noted as it arrives. */
export interface Spooled {
  /** Versions of the snapshots received, in the order they came. */
  snapshots: number[];
  /** Version of the first record received; `undefined` before one. */
  firstVersion: number | undefined;
  /** The highest version received (0 before any). */
  lastVersion: number;
  /** Records received, changes and snapshots. */
  records: number;
  /** Bytes spooled, packet headers included. */
  bytes: number;
}

/**
 * A `socket:` backup fetched over wire v1: its records spooled into a temporary file as they
 * arrived, read from there, removed on close.
 */
export class SocketBackupReader implements BackupReader {
  private constructor(
    readonly url: string,
    readonly tmp: string,
    readonly spooled: Spooled,
  ) {}

  /**
   * Fetches the backup at `url` from its server: with `credential` over wire v2 as a copy of
   * its files, else over v1; into a temporary directory in `scratch` when given (the plugin
   * may write only there). The CLI passes the one CLN_BACKUP_CREDENTIAL names; nothing here
   * reads the environment, which the plugin may not.
   */
  static async fetch(
    url: string,
    timeoutMs = DEFAULT_RETRY_POLICY.timeoutMs,
    credential?: NodeCredential,
    scratch?: string,
  ): Promise<BackupReader> {
    if (credential) {
      return await CopiedBackupReader.fetch(url, socketUrl(url), timeoutMs, credential, scratch);
    }
    const conn = await WireConnection.open(socketUrl(url), timeoutMs);
    const tmp = makeScratchDir("fetch", scratch);
    try {
      return new SocketBackupReader(url, tmp, await spool(conn, `${tmp}/restore.wire`));
    } catch (error) {
      removeScratchDir(tmp);
      throw error;
    } finally {
      conn.close();
    }
  }

  /** Facts about the backup, as counted while its records were spooled. */
  describe(): BackupDescription {
    const { snapshots, firstVersion, lastVersion, records, bytes } = this.spooled;
    return {
      url: this.url,
      format: "cln-backup server (wire v1)",
      snapshots,
      firstVersion: firstVersion ?? 0,
      lastVersion,
      records,
      bytes,
      tornBytes: 0,
      tail: undefined,
    };
  }

  *entries(toVersion = Infinity): Iterable<BackupEntry> {
    const path = `${this.tmp}/restore.wire`;
    const file = Deno.openSync(path, { read: true });
    const read = (into: Uint8Array) => {
      if (readFull(file, into) < into.length) {
        throw new Error(`Cannot read backup: "${path}" is cut short`);
      }
    };
    try {
      // Each spooled packet holds at least its version (spool checks it).
      const head = new Uint8Array(HEADER_BYTES + 4);
      const view = new DataView(head.buffer);
      while (readFull(file, head) === head.length) {
        const [type, length, version] = [head[0], view.getUint32(1), view.getUint32(5)];
        // A snapshot above it too: a restore to an older version must not start from it.
        if (version > toVersion) return;
        if (type === PacketType.Snapshot) {
          yield* snapshotEntries(read, length - 4, version);
          continue;
        }
        const payload = new Uint8Array(length);
        payload.set(head.subarray(HEADER_BYTES));
        read(payload.subarray(4));
        const { statements } = decodeChange({ type, payload }, DEFAULT_MAX_PAYLOAD_BYTES);
        yield { kind: "change", version, statements };
      }
    } finally {
      file.close();
    }
  }

  /** Removes the temporary directory the records were spooled into. */
  close(): void {
    removeScratchDir(this.tmp);
  }
}

/**
 * A SNAPSHOT's database, inflated part by part as the restore takes it: a v1 snapshot is one
 * packet, and inflated whole it would hold the node's database in memory. Damage shows only
 * at the stream's end (zlib's checksum comes last), after its parts went out: a restore
 * throws away what it built from them.
 */
function* snapshotEntries(
  read: (into: Uint8Array) => void,
  packedBytes: number,
  version: number,
): Generator<BackupEntry> {
  let totalBytes = 0;
  const parts = { partBytes: SNAPSHOT_PART_BYTES, maxBytes: MAX_DATABASE_BYTES };
  try {
    for (const bytes of inflateParts(read, packedBytes, parts)) {
      totalBytes += bytes.length;
      yield { kind: "snapshot-part", version, bytes };
    }
  } catch (error) {
    if (!(error instanceof InflateError)) throw error;
    throw new WireError(`SNAPSHOT ${version} does not decompress: ${error.message}`);
  }
  yield { kind: "snapshot-end", version, totalBytes };
}

/**
 * The server refused a reader that came without a node credential (wire v1): the command
 * that read it says where the credential goes.
 */
export class NoCredentialError extends RemoteBackupError {
  constructor(message: string) {
    super(message);
    this.name = "NoCredentialError";
  }
}

/** A record's first piece up to this size is written in one write with its header. */
const JOINED_PIECE_BYTES = 64 * 1024;

/** REQ_METADATA, RESTORE, and every record until DONE, into `path` as received. */
async function spool(conn: WireConnection, path: string): Promise<Spooled> {
  const reply = await conn.request(encodePacket(PacketType.ReqMetadata));
  if (reply.type === PacketType.Nack) {
    // Our server refuses wire v1 unless it serves one backup with --allow-v1.
    throw new NoCredentialError(
      "Cannot read backup: the server refused a client without a node credential: set " +
        "CLN_BACKUP_CREDENTIAL to the node's backup.credential file (made by `server add-node`)",
    );
  }
  if (reply.type !== PacketType.Metadata) {
    throw new RemoteBackupError(
      `Cannot read backup: the server answered ${packetName(reply.type)}, not METADATA: is it ` +
        `a backup server?`,
    );
  }
  const metadata = decodeMetadata(reply);
  await conn.send(encodePacket(PacketType.Restore));
  const spooled: Spooled = {
    snapshots: [],
    firstVersion: undefined,
    lastVersion: 0,
    records: 0,
    bytes: 0,
  };
  let last: number | undefined;
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  // Each record goes to the file as its bytes arrive: a SNAPSHOT is the whole database. A
  // record's header waits for its first piece, to go in one write with it when that is small
  // (a change is most often whole in one piece).
  const versionBytes = new Uint8Array(4);
  const joined = new Uint8Array(HEADER_BYTES + JOINED_PIECE_BYTES);
  let header: Uint8Array | undefined;
  let type = 0;
  let filled = 0;
  const sink: PayloadSink = {
    start(packetType, length) {
      type = packetType;
      filled = 0;
      if (type === PacketType.Done) return;
      if (type !== PacketType.Change && type !== PacketType.Snapshot) {
        throw new RemoteBackupError(
          `Cannot read backup: the server sent ${packetName(type)} during a restore`,
        );
      }
      if (length < 4) {
        throw new RemoteBackupError(
          `Cannot read backup: the server sent a ${packetName(type)} with no version`,
        );
      }
      spooled.records++;
      spooled.bytes += HEADER_BYTES + length;
      header = encodeHeader(type, length);
    },
    write(piece) {
      if (filled < 4) {
        const head = piece.subarray(0, 4 - filled);
        versionBytes.set(head, filled);
        filled += head.length;
      }
      if (header && piece.length <= JOINED_PIECE_BYTES) {
        joined.set(header);
        joined.set(piece, HEADER_BYTES);
        writeAll(file, joined.subarray(0, HEADER_BYTES + piece.length));
      } else {
        if (header) writeAll(file, header);
        writeAll(file, piece);
      }
      header = undefined;
    },
  };
  try {
    for (;;) {
      await conn.receiveTo(sink);
      if (type === PacketType.Done) break;
      const version = new DataView(versionBytes.buffer).getUint32(0);
      if (type === PacketType.Snapshot) spooled.snapshots.push(version);
      spooled.firstVersion ??= version;
      spooled.lastVersion = Math.max(spooled.lastVersion, version);
      last = version;
    }
  } finally {
    file.close();
  }
  // The Python client's check: the stream ends at the version METADATA announced.
  if ((last ?? 0) !== metadata.version) {
    throw new RemoteBackupError(
      `Cannot read backup: the server announced version ${metadata.version} but sent records ` +
        `up to ${last ?? "none"}: try again, and check the server's log`,
    );
  }
  return spooled;
}
