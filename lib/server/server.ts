/**
 * The backup server: `deno task server -- <storage-url> <addr:port>`, the counterpart of the
 * Python `backup-cli server`, speaking wire v1. Unlike it, it serves many connections at
 * once (one writer, any number of readers), acknowledges a change only once it is synced,
 * and closes cleanly on SIGTERM.
 *
 * @module
 */
import { formatHostPort } from "../backends/url.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "../wire/packet_reader.ts";
import { type LogLevel, Session, type SessionHost } from "./session.ts";
import type { ServerStorage } from "./storage.ts";

export interface ServerOptions {
  hostname: string;
  port: number;
  log(level: LogLevel, message: string): void;
  maxPayloadBytes?: number;
}

export class BackupServer implements SessionHost {
  readonly maxPayloadBytes: number;
  readonly log: (level: LogLevel, message: string) => void;
  #listener: Deno.TcpListener;
  #sessions = new Map<Session, Promise<void>>();
  #writer: Session | undefined;
  #nextId = 1;
  #serving: Promise<void>;
  #closing = false;

  constructor(readonly storage: ServerStorage, options: ServerOptions) {
    this.log = options.log;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.#listener = Deno.listen({ hostname: options.hostname, port: options.port });
    this.log("info", `serving ${storage.url} on ${this.address} (wire protocol v1)`);
    this.#serving = this.#accept();
  }

  /** The address it listens on, `host:port` (IPv6 in brackets). */
  get address(): string {
    const { hostname, port } = this.#listener.addr;
    return formatHostPort(hostname, port);
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing) return;
        throw error;
      }
      conn.setNoDelay(true);
      conn.setKeepAlive(true);
      const session = new Session(this.#nextId++, conn, this);
      this.log("info", `${session.name}: connected`);
      const done = session.run().finally(() => {
        this.#sessions.delete(session);
        if (this.#writer === session) this.#writer = undefined;
        this.log("info", `${session.name}: disconnected`);
      });
      this.#sessions.set(session, done);
    }
  }

  claimWriter(session: Session): Session | undefined {
    if (this.#writer && this.#writer !== session) return this.#writer;
    if (!this.#writer) this.log("info", `${session.name}: is now the backup's writer`);
    this.#writer = session;
    return undefined;
  }

  /**
   * Stops accepting, closes every connection and the backup. A change is written and synced
   * in one synchronous step, so no record is ever left half-written; one whose ACK had not
   * gone out yet is found by the client's resend rule after it reconnects.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#listener.close();
    await this.#serving;
    // A connection waiting for a compaction is answered by its end, not after it.
    this.storage.stopCompaction();
    for (const session of this.#sessions.keys()) session.close();
    await Promise.all(this.#sessions.values());
    this.storage.close();
    this.log("info", "stopped");
  }
}
