/**
 * TLS to a backup server, with node:tls: Deno's own TLS cannot pin a certificate by its
 * fingerprint. The server's certificate is checked before a byte of ours is sent: against
 * the URL's `fp`, or against the CAs in its `ca` file with node:tls's own verification (the
 * chain, and that it names the URL's host). Through a SOCKS5 proxy, TLS
 * starts on the proxied stream, so the proxy sees only ciphertext.
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { formatHostPort, type TlsTrust } from "../url.ts";
import { readCaFile } from "../ca_file.ts";

/**
 * The server's certificate is not the one the URL pins, or not one its CAs issued for the
 * host; or the CA file cannot be read.
 */
export class TlsIdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsIdentityError";
  }
}

/** Past this many bytes unread, the socket stops reading until they are. */
const HIGH_WATER = 1 << 20;

/** A node socket with Deno's `read`, `write` and `close`. */
export class SocketConn {
  #chunks: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  // deno-lint-ignore no-explicit-any
  readonly #listeners: [string, (...args: any[]) => void][];

  constructor(readonly socket: net.Socket) {
    this.#listeners = [
      ["data", (data: Uint8Array) => {
        this.#chunks.push(data);
        this.#queued += data.length;
        if (this.#queued > HIGH_WATER) socket.pause();
        this.#notify();
      }],
      ["end", () => {
        this.#ended = true;
        this.#notify();
      }],
      ["close", () => {
        this.#ended = true;
        this.#notify();
      }],
      ["error", (error: Error) => {
        this.#error = error;
        this.#notify();
      }],
    ];
    for (const [event, listener] of this.#listeners) socket.on(event, listener);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const chunk = this.#chunks[0];
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    this.#queued -= n;
    if (this.#queued <= HIGH_WATER && this.socket.isPaused()) this.socket.resume();
    return n;
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length));
    });
  }

  /** Hands the socket over (to TLS) with nothing left unread. */
  detach(): net.Socket {
    if (this.#chunks.length > 0) throw new Error("the proxy sent bytes past its reply");
    for (const [event, listener] of this.#listeners) this.socket.off(event, listener);
    return this.socket;
  }

  close(): void {
    this.socket.destroy();
    this.#ended = true;
    this.#notify();
  }
}

/** A plain TCP connection (to a SOCKS5 proxy, before TLS starts on it). */
export function dialTcp(host: string, port: number): Promise<SocketConn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(new SocketConn(socket));
    });
  });
}

/** The CA certificates of `ca`, the PEM file a URL names; one that does not read refuses TLS. */
function readCa(ca: string): string {
  try {
    return readCaFile(ca);
  } catch (error) {
    // A CA file the launcher does not let it read: as a connection it does not allow.
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new TlsIdentityError((error as Error).message);
  }
}

/**
 * Starts TLS to `host:port`, directly or on `proxied` (a proxy's stream to it), and checks
 * the server's certificate as `trust` says.
 */
export function startTls(
  host: string,
  port: number,
  trust: TlsTrust,
  proxied?: SocketConn,
): Promise<SocketConn> {
  const server = formatHostPort(host, port);
  let ca: string | undefined;
  try {
    ca = trust.ca === undefined ? undefined : readCa(trust.ca);
  } catch (error) {
    proxied?.close();
    return Promise.reject(error);
  }
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      // `host` names what the certificate must be issued for, also on a proxied stream.
      ...(proxied ? { socket: proxied.detach(), host } : { host, port }),
      servername: net.isIP(host) ? undefined : host,
      // A pinned certificate is self-signed: the fingerprint is the whole check.
      ...(ca === undefined ? { rejectUnauthorized: false } : { ca, rejectUnauthorized: true }),
    });
    socket.setNoDelay(true);
    socket.once("error", (error) => {
      socket.destroy();
      reject(
        ca !== undefined && /certificate|verify|altnames|self.signed/i.test(error.message)
          ? new TlsIdentityError(
            `the TLS certificate of ${server} is not trusted (${error.message}): it must be ` +
              `issued for ${host} by a CA in "${trust.ca}"; check the file and the server's ` +
              `certificate, or pin it with ?fp=sha256:<hex> instead`,
          )
          : error,
      );
    });
    socket.once("secureConnect", () => {
      const seen = socket.getPeerCertificate().fingerprint256?.replaceAll(":", "").toLowerCase();
      if (trust.fingerprint !== undefined && seen !== trust.fingerprint) {
        socket.destroy();
        reject(
          new TlsIdentityError(
            `the TLS certificate of ${server} has fingerprint sha256:${seen}, but the URL ` +
              `pins sha256:${trust.fingerprint}: if the server's certificate was replaced, put ` +
              `its new fingerprint in the URL's ?fp= (on the command line, or in backup.lock ` +
              `when the URL is the one there); otherwise someone is in between`,
          ),
        );
        return;
      }
      socket.removeAllListeners("error");
      resolve(new SocketConn(socket));
    });
  });
}
