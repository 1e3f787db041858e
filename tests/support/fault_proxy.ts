/**
 * A TCP proxy that breaks connections on purpose, for the socket backend's fault tests: it
 * forwards between a client and the backup server, and at a chosen byte of a chosen
 * direction it cuts the connection (both sides closed) or hangs (stops forwarding, keeps the
 * sockets open, and so do the connections after it). It can also forward the client's bytes
 * no faster than a slow uplink would.
 *
 * @module
 */

export type Direction = "c2s" | "s2c";

export interface Fault {
  kind: "cut" | "hang";
  direction: Direction;
  /** Bytes of that direction, counted over all connections, forwarded before the fault. */
  at: number;
}

export class FaultProxy {
  /** Bytes forwarded so far, by direction. */
  readonly forwarded: Record<Direction, number> = { c2s: 0, s2c: 0 };
  /** Every byte forwarded, by direction, when asked to record. */
  readonly recorded: Record<Direction, number[]> = { c2s: [], s2c: [] };
  /** Connections accepted. */
  connections = 0;
  /** Set once the fault struck. */
  struck = false;
  #listener: Deno.TcpListener;
  #open = new Set<Deno.Conn>();
  #pumps: Promise<void>[] = [];
  #accepting: Promise<void>;
  #hung = false;

  constructor(
    readonly upstreamPort: number,
    readonly fault?: Fault,
    readonly record = false,
    /** The client's bytes go on at this rate at most (a slow uplink, Tor); unset: at once. */
    readonly uplinkBytesPerSecond?: number,
  ) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      this.connections++;
      this.#open.add(client);
      if (this.#hung) continue;
      let server: Deno.Conn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: this.upstreamPort });
      } catch {
        this.#close(client);
        continue;
      }
      this.#open.add(server);
      const pair = { client, server };
      this.#pumps.push(this.#pump(pair, "c2s"), this.#pump(pair, "s2c"));
    }
  }

  async #pump(pair: { client: Deno.Conn; server: Deno.Conn }, direction: Direction) {
    const [from, to] = direction === "c2s"
      ? [pair.client, pair.server]
      : [pair.server, pair.client];
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null || this.#hung) break;
        let chunk = buffer.subarray(0, n);
        const fault = this.fault;
        let strike = false;
        if (fault && !this.struck && fault.direction === direction) {
          const left = fault.at - this.forwarded[direction];
          if (left < chunk.length) {
            chunk = chunk.subarray(0, Math.max(0, left));
            strike = true;
          }
        }
        for (let at = 0; at < chunk.length;) at += await to.write(chunk.subarray(at));
        this.forwarded[direction] += chunk.length;
        const rate = direction === "c2s" ? this.uplinkBytesPerSecond : undefined;
        if (rate) await new Promise((resolve) => setTimeout(resolve, chunk.length / rate * 1000));
        if (this.record) this.recorded[direction].push(...chunk);
        if (strike) {
          this.struck = true;
          if (fault!.kind === "hang") {
            this.#hung = true;
            return;
          }
          break;
        }
      }
    } catch {
      // One side went away: the other goes too.
    }
    if (this.#hung) return;
    this.#close(pair.client);
    this.#close(pair.server);
  }

  #close(conn: Deno.Conn): void {
    if (!this.#open.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // closed already
    }
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    this.#hung = false;
    for (const conn of [...this.#open]) this.#close(conn);
    await Promise.allSettled(this.#pumps);
  }
}
