/**
 * Our backup server on loopback for tests, over a storage directory built from a recorded
 * v1 `.dbak`, and a raw client that sends packets and reads the answers.
 *
 * @module
 */
import { writeFully } from "../../lib/wire/conn_io.ts";
import { BackupServer } from "../../lib/server/server.ts";
import { ServerStorage } from "../../lib/server/storage.ts";
import { convert } from "../../lib/cli/upgrade.ts";
import { V1BackupReader } from "../../lib/backends/v1/reader.ts";
import { type Packet, PacketType } from "../../lib/wire/packets.ts";
import { PacketReader } from "../../lib/wire/packet_reader.ts";
import { decodeChange, decodeSnapshot, packetName } from "../../lib/wire/packets.ts";
import { assertEquals } from "./assert.ts";

/** Builds a cln-backup directory at `dir` holding what the v1 file holds. */
export async function storageFromV1(v1Path: string, dir: string): Promise<void> {
  Deno.mkdirSync(dir, { recursive: true });
  await convert(new V1BackupReader(`file://${v1Path}`, v1Path), dir);
}

export interface TestServer {
  server: BackupServer;
  logs: string[];
  url: string;
}

/** Starts our server on `dir` at 127.0.0.1 (`port` 0 picks one). */
export function startServer(
  dir: string,
  port = 0,
  { maxPayloadBytes, quotaBytes, failureLinesPerMinute, now }: {
    maxPayloadBytes?: number;
    quotaBytes?: number;
    failureLinesPerMinute?: number;
    /** The server's clock, in ms. */
    now?: () => number;
  } = {},
): TestServer {
  const logs: string[] = [];
  const log = (level: string, message: string) => logs.push(`${level}: ${message}`);
  const storage = ServerStorage.open(`file://${dir}`, dir, (m) => log("info", m));
  const server = new BackupServer({
    hostname: "127.0.0.1",
    port,
    log,
    v1Storage: storage,
    maxPayloadBytes,
    limits: {
      quotaBytes,
      ...(failureLinesPerMinute === undefined ? {} : { failureLinesPerMinute }),
    },
    now,
  });
  return { server, logs, url: `socket:127.0.0.1:${server.port}` };
}

/**
 * Runs `body` with our server (wire v1) on a new backup in a temporary directory, `root`;
 * then stops the server and removes the directory.
 */
export async function withTestServer(
  body: (server: TestServer, root: string) => Promise<void>,
): Promise<void> {
  const root = Deno.makeTempDirSync({ prefix: "wire-server-" });
  const server = startServer(`${root}/served`);
  try {
    await body(server, root);
  } finally {
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
}

/** A client that sends raw packets. */
export class RawClient {
  #reader: PacketReader;
  private constructor(readonly conn: Deno.TcpConn) {
    this.#reader = new PacketReader(conn);
  }

  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(bytes: Uint8Array): Promise<void> {
    await writeFully(this.conn, bytes);
  }

  /** The next packet, or `null` once the server closed the connection. */
  async next(): Promise<Packet | null> {
    try {
      return await this.#reader.next();
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) return null;
      throw error;
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed already
    }
  }
}

/** Asserts a packet equals a recorded one: same bytes, or for zlib payloads the same content. */
export function assertSamePacket(actual: Packet | null, recorded: Uint8Array, what: string): void {
  if (!actual) throw new Error(`${what}: connection closed, expected ${packetName(recorded[0])}`);
  const expected = { type: recorded[0], payload: recorded.subarray(5) };
  assertEquals(packetName(actual.type), packetName(expected.type), what);
  if (actual.type === PacketType.Change) {
    assertEquals(decodeChange(actual, 1 << 30), decodeChange(expected, 1 << 30), what);
  } else if (actual.type === PacketType.Snapshot) {
    assertEquals(decodeSnapshot(actual, 1 << 30), decodeSnapshot(expected, 1 << 30), what);
  } else {
    assertEquals(actual.payload, expected.payload, what);
  }
}
