/**
 * The server's TLS listener: TCP accepted by `Deno.listen`, TLS by node:tls on top of it.
 * `Deno.listenTls` cannot be used: in Deno 2.9 closing one of its connections whose
 * handshake has not finished leaves the socket open (the peer sees nothing), so peers that
 * send part of a ClientHello and go quiet would outlast the handshake timeout and the
 * eviction of pending connections, and pile up until the server runs out of file
 * descriptors. Here `close` closes the TCP connection itself, handshake or not.
 *
 * @module
 */
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import { closeQuietly, lostConnection } from "../wire/conn_io.ts";
import { SocketConn } from "../backends/socket/tls_dial.ts";
import { checkIdentity } from "./tls_identity.ts";

/** What the server and its sessions use of a connection: a `Deno.TcpConn` has it all. */
export interface ServerConn {
  readonly remoteAddr: Deno.NetAddr;
  /**
   * Set once the TLS layer refused what the peer sent (not TLS, or a handshake it cannot
   * finish), the alert then on its way; not for a connection merely lost mid-handshake.
   */
  readonly tlsRefused?: TlsRefusal;
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  /** Closes the connection's socket, whether or not its TLS handshake has finished. */
  close(): void;
  setNoDelay(noDelay?: boolean): void;
  setKeepAlive(keepAlive?: boolean): void;
}

/** Why the TLS layer refused a peer: the first byte it sent, and node:tls's error. */
export interface TlsRefusal {
  firstByte: number | undefined;
  message: string;
}

/** What the server uses of a listener: a `Deno.TcpListener` has it all. */
export interface ServerListener {
  readonly addr: Deno.NetAddr;
  accept(): Promise<ServerConn>;
  close(): void;
}

/** The most read from the TCP connection at once (TLS records are at most 16 KiB + 256). */
const READ_BYTES = 17 * 1024;

/**
 * `tcp` as a node stream, for a `TLSSocket` to run on: reads as the TLS layer asks, writes
 * each encrypted piece whole. Destroyed, it leaves `tcp` open: {@linkcode TlsServerConn.close},
 * which the server calls for every connection it accepted, closes it (after an alert).
 */
function streamOf(tcp: Deno.TcpConn, seen: { firstByte?: number }): Duplex {
  let reading = false;
  const stream: Duplex = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      (async () => {
        for (;;) {
          // A new buffer each time: the TLS layer keeps what it is given.
          const buffer = new Uint8Array(READ_BYTES);
          let n: number | null;
          try {
            n = await tcp.read(buffer);
          } catch (error) {
            stream.destroy(error as Error);
            return;
          }
          if (n === null) {
            stream.push(null);
            return;
          }
          if (n > 0) seen.firstByte ??= buffer[0];
          if (!stream.push(buffer.subarray(0, n))) break;
        }
        reading = false;
      })();
    },
    write(chunk: Uint8Array, _encoding, done) {
      (async () => {
        for (let at = 0; at < chunk.length;) at += await tcp.write(chunk.subarray(at));
      })().then(() => done(), done);
    },
  });
  return stream;
}

/**
 * A fatal `decode_error` alert, as `Deno.listenTls` answered a peer that does not speak TLS
 * (node:tls in Deno sends none): a client of ours given a plain `socket:` URL reads it and
 * says the server speaks TLS (packet_reader.ts).
 */
const DECODE_ERROR_ALERT = Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32);

/** One accepted TLS connection; the handshake runs as its first bytes arrive. */
class TlsServerConn implements ServerConn {
  readonly remoteAddr: Deno.NetAddr;
  readonly #socket: SocketConn;
  /** The alert being sent after a failed handshake; the socket closes once it is. */
  #alerting: Promise<void> | undefined;
  tlsRefused: TlsRefusal | undefined;

  constructor(readonly tcp: Deno.TcpConn, secureContext: tls.SecureContext) {
    this.remoteAddr = tcp.remoteAddr;
    const seen: { firstByte?: number } = {};
    const stream = streamOf(tcp, seen);
    // Its errors reach the TLS socket, which reports them to `read` and `write`.
    stream.on("error", () => {});
    const socket = new tls.TLSSocket(stream, { isServer: true, secureContext });
    let secure = false;
    socket.once("secure", () => secure = true);
    socket.once("error", (error) => {
      // The TLS layer refused what the peer sent (not TLS, or a broken handshake). Seven bytes
      // on a socket that carried at most a ServerHello: the write does not wait on the peer.
      if (secure || lostConnection(error)) return;
      this.tlsRefused = { firstByte: seen.firstByte, message: (error as Error).message };
      this.#alerting = tcp.write(DECODE_ERROR_ALERT).then(() => {}, () => {})
        .finally(() => closeQuietly(tcp));
    });
    this.#socket = new SocketConn(socket);
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    try {
      return await this.#socket.read(buffer);
    } catch (error) {
      throw lost(error);
    }
  }

  async write(bytes: Uint8Array): Promise<number> {
    try {
      return await this.#socket.write(bytes);
    } catch (error) {
      throw lost(error);
    }
  }

  close(): void {
    this.#socket.close();
    // The TCP connection itself: whatever state the TLS layer is in, the socket is closed.
    if (!this.#alerting) closeQuietly(this.tcp);
  }

  setNoDelay(noDelay = true): void {
    this.tcp.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive = true): void {
    this.tcp.setKeepAlive(keepAlive);
  }
}

/**
 * A failed TLS read or write as a Deno connection error (a bad record, a handshake the peer
 * botched, a write after close), so the sessions take it for the lost connection it is.
 */
function lost(error: unknown): Error {
  if (lostConnection(error)) return error as Error;
  return new Deno.errors.ConnectionAborted(`TLS: ${(error as Error).message}`);
}

/** Listens on `hostname:port` (at once, as `Deno.listen`) for TLS with `cert` and `key`. */
export function listenTls(
  options: { hostname: string; port: number; cert: string; key: string },
): ServerListener {
  checkIdentity(options.cert, options.key);
  const secureContext = tls.createSecureContext({ cert: options.cert, key: options.key });
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  return {
    addr: listener.addr,
    async accept() {
      return new TlsServerConn(await listener.accept(), secureContext);
    },
    close() {
      listener.close();
    },
  };
}
