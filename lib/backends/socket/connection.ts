/**
 * One connection to a backup server: dialled directly or through a SOCKS5 proxy, with
 * every wait bounded. Any failure of the connection itself is a
 * {@linkcode ConnectionLostError}, which the backend answers by reconnecting.
 *
 * @module
 */
import { type BackupUrl, formatHostPort } from "../url.ts";
import { type Packet, WireError } from "../../wire/packets.ts";
import { PacketReader, StreamEndedError } from "../../wire/packet_reader.ts";
import { socks5Connect } from "./socks5.ts";

export type SocketUrl = BackupUrl & { scheme: "socket" };

/** The connection failed, closed or timed out: reconnecting may help. */
export class ConnectionLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionLostError";
  }
}

/** Runs `work`, or after `ms` calls `onTimeout` and fails with `what` timed out. */
async function bounded<T>(
  work: Promise<T>,
  ms: number,
  what: string,
  onTimeout: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new ConnectionLostError(`${what} timed out after ${ms / 1000} s`));
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function lost(error: unknown, what: string): Error {
  if (error instanceof StreamEndedError) {
    return new ConnectionLostError(`${what}: ${error.message}`);
  }
  if (error instanceof ConnectionLostError || error instanceof WireError) return error;
  return new ConnectionLostError(`${what}: ${(error as Error).message}`);
}

export class WireConnection {
  #reader: PacketReader;
  #closed = false;

  private constructor(readonly conn: Deno.TcpConn, readonly timeoutMs: number) {
    this.#reader = new PacketReader(conn);
  }

  /** Connects to the server `url` names, through its proxy when it has one. */
  static async open(url: SocketUrl, timeoutMs: number): Promise<WireConnection> {
    const first = url.proxy ?? url;
    const what = url.proxy
      ? `connecting to ${formatHostPort(url.host, url.port)} through the proxy ` +
        formatHostPort(url.proxy.host, url.proxy.port)
      : `connecting to ${formatHostPort(url.host, url.port)}`;
    let conn: Deno.TcpConn | undefined;
    let timedOut = false;
    const dialling = Deno.connect({ hostname: first.host, port: first.port });
    // A connect that completes after its timeout is closed at once.
    dialling.then((c) => timedOut && c.close(), () => {});
    try {
      await bounded(
        (async () => {
          conn = await dialling;
          if (url.proxy) await socks5Connect(conn, url.host, url.port);
        })(),
        timeoutMs,
        what,
        () => {
          timedOut = true;
          conn?.close();
        },
      );
    } catch (error) {
      if (!timedOut) conn?.close();
      throw lost(error, what);
    }
    conn!.setNoDelay(true);
    return new WireConnection(conn!, timeoutMs);
  }

  /** Sends one packet (already framed) in one write. */
  async send(bytes: Uint8Array): Promise<void> {
    const conn = this.conn;
    await bounded(
      (async () => {
        for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
      })(),
      this.timeoutMs,
      "sending to the server",
      () => this.close(),
    ).catch((error) => {
      throw lost(error, "sending to the server");
    });
  }

  /**
   * The next packet from the server, waiting at most `timeoutMs`; its end of stream is a lost
   * connection.
   */
  async receive(timeoutMs = this.timeoutMs): Promise<Packet> {
    let packet: Packet | null;
    try {
      packet = await bounded(
        this.#reader.next(),
        timeoutMs,
        "waiting for the server's answer",
        () => this.close(),
      );
    } catch (error) {
      throw lost(error, "reading from the server");
    }
    if (!packet) throw new ConnectionLostError("the server closed the connection");
    return packet;
  }

  async request(bytes: Uint8Array): Promise<Packet> {
    await this.send(bytes);
    return await this.receive();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}
