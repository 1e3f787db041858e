/**
 * TLS in front of a plain server on loopback, as a reverse proxy puts it in front of an S3
 * store: each connection to its port is TLS with `cert` and `key`, its bytes relayed to
 * `127.0.0.1:target`.
 *
 * @module
 */
import { closeQuietly } from "../../lib/wire/conn_io.ts";

export class TlsFront {
  readonly #listener: Deno.TlsListener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #serving: Promise<void>;

  constructor(target: number, identity: { cert: string; key: string }) {
    this.#listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...identity });
    this.#serving = this.#serve(target);
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async #serve(target: number): Promise<void> {
    for await (const front of this.#listener) {
      this.#relay(front, target).catch(() => {});
    }
  }

  async #relay(front: Deno.TlsConn, target: number): Promise<void> {
    this.#conns.add(front);
    let back: Deno.TcpConn | undefined;
    try {
      back = await Deno.connect({ hostname: "127.0.0.1", port: target });
      this.#conns.add(back);
      await Promise.race([
        front.readable.pipeTo(back.writable, { preventClose: true }),
        back.readable.pipeTo(front.writable, { preventClose: true }),
      ]);
    } finally {
      for (const conn of [front, back]) {
        if (!conn) continue;
        this.#conns.delete(conn);
        closeQuietly(conn);
      }
    }
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) closeQuietly(conn);
    await this.#serving.catch(() => {});
  }
}
