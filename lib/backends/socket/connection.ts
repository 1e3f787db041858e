/**
 * One connection to a backup server: dialled directly or through a SOCKS5 proxy, in the
 * clear or over TLS (tls_dial.ts), with every wait bounded. Any failure of the connection itself is a
 * {@linkcode ConnectionLostError}, which the backend answers by reconnecting.
 *
 * @module
 */
import { closeQuietly, writeFully } from "../../wire/conn_io.ts";
import { type BackupUrl, formatHostPort } from "../url.ts";
import { type Packet, WireError } from "../../wire/packets.ts";
import { PacketReader, type PayloadSink, StreamEndedError } from "../../wire/packet_reader.ts";
import { socks5Connect } from "./socks5.ts";
import {
  decodeChallenge,
  decodeError,
  decodeWelcome,
  encodeFrame,
  encodeHello,
  ErrorCode,
  PROTOCOL_VERSION,
  V2_CLIENT_FRAMING,
  type V2Metadata,
  V2Type,
} from "../../wire/packets_v2.ts";
import { checkProof, nonce, prove } from "../../wire/handshake.ts";
import type { NodeCredential } from "./credential.ts";
import { dialTcp, SocketConn, startTls, TlsIdentityError } from "./tls_dial.ts";
import { uploadAllowanceMs } from "../upload_allowance.ts";

/** A parsed `socket:` or `socket+tls:` URL. */
export type SocketUrl = BackupUrl & { scheme: "socket" };

/**
 * What to do about a connect the network refused, after the OS's words; `undefined` when
 * they say it already. The proxy's refusals of the target come from socks5.ts.
 */
function connectAdvice(error: unknown, proxied: boolean): string | undefined {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? "";
  const there = proxied ? "the proxy the URL names" : "the server";
  if (error instanceof Deno.errors.ConnectionRefused || code === "ECONNREFUSED") {
    return `nothing accepts connections there: check that ${there} runs, and the URL's host ` +
      `and port`;
  }
  if (code === "ENOTFOUND" || /failed to lookup address|getaddrinfo/i.test(message)) {
    return "the host name does not resolve: check it, or give an IP address";
  }
  if (
    code === "EHOSTUNREACH" || code === "ENETUNREACH" ||
    /No route to host|Network is unreachable/i.test(message)
  ) {
    return "no route to that host: check the address and this machine's network";
  }
  if (error instanceof ConnectionLostError && /timed out/.test(message)) {
    return `check the URL's host and port, that ${there} runs, and that no firewall drops ` +
      `the connection`;
  }
  return undefined;
}

/** The connection failed, closed or timed out: reconnecting may help. */
export class ConnectionLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionLostError";
  }
}

/** How long a failed write waits for the ERROR that may say why the server closed. */
const REFUSAL_WAIT_MS = 1_000;

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
  // A permission this process lacks is no lost connection: reconnecting cannot help.
  if (
    error instanceof ConnectionLostError || error instanceof WireError ||
    error instanceof Deno.errors.NotCapable
  ) return error;
  return new ConnectionLostError(`${what}: ${(error as Error).message}`);
}

/** A v2 server refused with an ERROR, or failed to prove it holds the node's key. */
export class ServerRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ServerRefusedError";
  }
}

/** A v2 ERROR as the error it means. */
export function refusal(packet: Packet, what: string): ServerRefusedError {
  const { message } = decodeError(packet);
  return new ServerRefusedError(`the server refused ${what}: ${message}`);
}

export class WireConnection {
  #reader: PacketReader;
  #closed = false;
  /** Where the node's backup stood when a v2 handshake finished; `undefined` in v1. */
  welcome: V2Metadata | undefined;

  private constructor(readonly conn: Deno.TcpConn | SocketConn, readonly timeoutMs: number) {
    this.#reader = new PacketReader(conn);
  }

  /**
   * Connects to the server `url` names, through its proxy when it has one; with a
   * credential, speaks v2 and proves the node's key (the server proves it too).
   */
  static async open(
    url: SocketUrl,
    timeoutMs: number,
    credential?: NodeCredential,
  ): Promise<WireConnection> {
    const first = url.proxy ?? url;
    const what = url.proxy
      ? `connecting to ${formatHostPort(url.host, url.port)} through the proxy ` +
        formatHostPort(url.proxy.host, url.proxy.port)
      : `connecting to ${formatHostPort(url.host, url.port)}`;
    let conn: Deno.TcpConn | SocketConn | undefined;
    let timedOut = false;
    const dialling = url.tls
      ? (url.proxy ? dialTcp(first.host, first.port) : startTls(url.host, url.port, url.tls))
      : Deno.connect({ hostname: first.host, port: first.port });
    // A connect that completes after its timeout is closed at once.
    dialling.then((c) => timedOut && c.close(), () => {});
    try {
      await bounded(
        (async () => {
          conn = await dialling;
          if (url.proxy) await socks5Connect(conn, url.host, url.port);
          if (url.proxy && url.tls) {
            conn = await startTls(url.host, url.port, url.tls, conn as SocketConn);
          }
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
      if (error instanceof TlsIdentityError) {
        throw new ServerRefusedError(error.message);
      }
      const failed = lost(error, what);
      const advice = connectAdvice(error, url.proxy !== undefined);
      if (advice) failed.message += `: ${advice}`;
      throw failed;
    }
    if (!(conn instanceof SocketConn)) conn!.setNoDelay(true);
    const connection = new WireConnection(conn!, timeoutMs);
    if (credential) {
      try {
        await connection.#handshake(credential, formatHostPort(url.host, url.port));
      } catch (error) {
        connection.close();
        throw error;
      }
    }
    return connection;
  }

  /** HELLO, CHALLENGE, AUTH, WELCOME (docs/PROTOCOL.md). */
  async #handshake(credential: NodeCredential, server: string): Promise<void> {
    this.#reader.framing = V2_CLIENT_FRAMING;
    const clientNonce = nonce();
    const { node, key } = credential;
    await this.send(encodeHello({ protocol: PROTOCOL_VERSION, node, nonce: clientNonce }));
    const challenge = await this.receive();
    if (challenge.type === V2Type.Error) throw refusal(challenge, `node ${node}`);
    const input = { node, clientNonce, serverNonce: decodeChallenge(challenge).nonce };
    await this.send(encodeFrame(V2Type.Auth, await prove(key, "client", input)));
    const welcome = await this.receive();
    if (welcome.type === V2Type.Error) {
      // After the proof, a refusal is of the credential, or of a node the server cannot serve.
      const unauthorized = decodeError(welcome).code === ErrorCode.Unauthorized;
      throw refusal(welcome, unauthorized ? `node ${node}'s credential` : `node ${node}`);
    }
    const { proof, metadata } = decodeWelcome(welcome);
    if (!(await checkProof(key, "server", input, proof))) {
      throw new ServerRefusedError(
        `the server at ${server} did not prove it holds node ${node}'s key: it is not this ` +
          `node's backup server, or the node was added again with a new key; check the ` +
          `address and ${credential.path}`,
      );
    }
    this.welcome = metadata;
  }

  /** Sends one packet (already framed) in one write, with time for its bytes beside the timeout. */
  async send(bytes: Uint8Array): Promise<void> {
    const conn = this.conn;
    await bounded(
      writeFully(conn, bytes),
      this.timeoutMs + uploadAllowanceMs(bytes.length),
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

  /**
   * The next packet, its payload handed to `sink` in pieces as they arrive
   * ({@linkcode PacketReader.nextTo}: wire v1 only); `timeoutMs` bounds the wait for each
   * piece, not for the whole, so a large packet over a slow link is not cut off. What `sink`
   * throws comes out as it is, the packet read part way: close the connection then. The end
   * of stream is a lost connection.
   */
  async receiveTo(sink: PayloadSink): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        this.close();
      }, this.timeoutMs);
    };
    let sinkError: unknown;
    const guarded = (work: () => void) => {
      arm();
      try {
        work();
      } catch (error) {
        sinkError = error;
        throw error;
      }
    };
    arm();
    try {
      const got = await this.#reader.nextTo({
        start: (type, length) => guarded(() => sink.start(type, length)),
        write: (piece) => guarded(() => sink.write(piece)),
      });
      if (!got) throw new ConnectionLostError("the server closed the connection");
    } catch (error) {
      if (error === sinkError) throw error;
      if (timedOut) {
        throw new ConnectionLostError(
          `waiting for the server's answer timed out after ${this.timeoutMs / 1000} s`,
        );
      }
      throw lost(error, "reading from the server");
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends a packet, then what `more` sends after it (DATA), and returns the answer, waiting
   * for it at most `timeoutMs` (the connection's timeout by default) and the time the
   * packet's bytes take at the slowest upload allowed for. A v2
   * server that refuses a packet part way (one over its size limit) says why in an ERROR and
   * closes while the packet is still going out: that ERROR, still there to read after the
   * failed write, is the answer, not the broken pipe.
   */
  async request(
    bytes: Uint8Array,
    more?: () => Promise<void>,
    timeoutMs = this.timeoutMs,
  ): Promise<Packet> {
    try {
      await this.send(bytes);
      await more?.();
    } catch (error) {
      const said = this.welcome
        ? await this.receive(REFUSAL_WAIT_MS).catch(() => undefined)
        : undefined;
      if (said?.type !== V2Type.Error) throw error;
      this.close();
      return said;
    }
    // Bytes the write left in the socket's buffers are still on their way to the server.
    return await this.receive(timeoutMs + uploadAllowanceMs(bytes.length));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.conn);
  }
}
