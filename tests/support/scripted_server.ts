/**
 * A server that answers as a recorded one did: the n-th connection gets the n-th recorded
 * connection's replies, request by request, and what the client sent is kept for comparing.
 *
 * @module
 */
import type { Exchange } from "./wire_fixtures.ts";
import type { Packet } from "../../lib/wire/packets.ts";
import { PacketReader } from "../../lib/wire/packet_reader.ts";

export interface ScriptOptions {
  /** Close connection `conn` (0-based) on its request `step`, without answering it. */
  cut?: { conn: number; step: number };
}

export class ScriptedServer {
  /** The packets each connection's client sent, as raw bytes. */
  readonly received: Uint8Array[][] = [];
  #listener: Deno.TcpListener;
  #done: Promise<void>;
  #conns: Deno.Conn[] = [];

  constructor(readonly script: Exchange[][], readonly options: ScriptOptions = {}) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#done = this.#serve();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  get url(): string {
    return `socket:127.0.0.1:${this.port}`;
  }

  async #serve(): Promise<void> {
    const sessions: Promise<void>[] = [];
    for (let n = 0;; n++) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        break;
      }
      this.#conns.push(conn);
      sessions.push(this.#session(n, conn));
    }
    await Promise.allSettled(sessions);
  }

  async #session(n: number, conn: Deno.Conn): Promise<void> {
    const reader = new PacketReader(conn);
    const received: Uint8Array[] = [];
    this.received[n] = received;
    try {
      for (let step = 0;; step++) {
        const packet: Packet | null = await reader.next();
        if (!packet) return;
        const bytes = new Uint8Array(5 + packet.payload.length);
        bytes[0] = packet.type;
        new DataView(bytes.buffer).setUint32(1, packet.payload.length);
        bytes.set(packet.payload, 5);
        received.push(bytes);
        const cut = this.options.cut;
        if (cut && cut.conn === n && cut.step === step) return;
        for (const reply of this.script[n]?.[step]?.replies ?? []) {
          for (let at = 0; at < reply.length;) at += await conn.write(reply.subarray(at));
        }
      }
    } catch {
      // The client went away.
    } finally {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
    await this.#done;
  }
}
