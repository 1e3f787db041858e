/**
 * The backup server: `deno task server -- <storage> <addr:port>`. It speaks wire v2 to
 * nodes that prove their key (docs/PROTOCOL.md), each confined to its own backup, and wire
 * v1, the Python `backup-cli server`'s, only when the operator allows it, to one backup.
 * Unlike the Python server, it serves many connections at once (one writer per backup, any
 * number of readers), acknowledges a change only once it is synced, and closes cleanly on
 * SIGTERM.
 *
 * @module
 */
import { closeQuietly, writeFully } from "../wire/conn_io.ts";
import { encodeVersionPacket, PacketType } from "../wire/packets.ts";
import { formatHostPort } from "../backends/url.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES, PacketReader } from "../wire/packet_reader.ts";
import { encodeError, ErrorCode, V2_HANDSHAKE_FRAMING, V2Type } from "../wire/packets_v2.ts";
import { admit, isLoopback, type Pending } from "./admission.ts";
import { peerGroup } from "./peer_group.ts";
import { type LogLevel, Session, type Writer } from "./session.ts";
import { V2Session } from "./session_v2.ts";
import { ServerStorage } from "./storage.ts";
import { KeyFileError, type NodeRegistry } from "./nodes.ts";
import type { NodeStats } from "./metrics.ts";
import { TLS_CERT_NAME, type TlsIdentity } from "./tls_identity.ts";
import {
  listenTls,
  type ServerConn,
  type ServerListener,
  type TlsRefusal,
} from "./tls_listener.ts";
import { existsSync } from "../fs/exists.ts";
import { MAX_PAYLOAD_BYTES } from "../format/record.ts";
import { InflateBudget } from "./inflate_budget.ts";
import { type FailureKind, FailureLog } from "./log_limit.ts";
import { FileBackupReader } from "../backends/file/reader.ts";

/** What the server tolerates, per node and per peer. */
export interface ServerLimits {
  /** Connections one node may hold open at once. */
  connectionsPerNode: number;
  /**
   * Failed authentications a peer address (an IPv6 peer's /64: peer_group.ts) may make in a
   * minute before it is turned away; a loopback address never is (every peer of a Tor onion
   * service or a local proxy has it).
   */
  failedAuthsPerMinute: number;
  /** Bytes a node's backup may hold; `undefined`: no quota. */
  quotaBytes: number | undefined;
  /** Time a connection has, from its accept, to finish its handshake. */
  handshakeTimeoutMs: number;
  /**
   * Connections that have not finished a handshake yet, all peers together; past it, the
   * oldest of those from the address (an IPv6 peer's /64) holding the most is closed for the
   * new one (admission.ts).
   */
  pendingConnections: number;
  /**
   * Of those, from one address that is not loopback (an IPv6 peer's /64: peer_group.ts); past
   * it, its new one is turned away.
   */
  pendingPerAddress: number;
  /**
   * A wire v2 writer silent this long gives its backup up to another connection of its node
   * that writes: the node's own, back after its host or network went down while the old
   * connection still looks open here (TCP can take hours to tell). A live plugin's heartbeats
   * (`RetryPolicy.heartbeatMs`) keep it from ever being so silent; one that never sent one (a
   * plugin from before heartbeats) is never taken over.
   */
  writerSilenceMs: number;
  /**
   * Bytes of CHANGE bodies held inflated at once, all connections together (inflate_budget.ts);
   * a change past what is left waits for room. It also caps one change.
   */
  inflatingBytes: number;
  /**
   * Wire v1 connections open at once (`--allow-v1`). v1 has no handshake to time out and a
   * Python plugin keeps its connection open, idle, between changes, so idle ones are not
   * closed on a timer; past this many, the new one takes the place of the one idle longest
   * that is not the backup's writer, or is turned away when every one is the writer.
   */
  v1Connections: number;
  /**
   * Lines of each kind of per-connection failure (a refused login, a protocol error, a
   * connection that proved no key coming and going: log_limit.ts) logged in a minute; past it,
   * they are counted, and one line says how many once the minute is over.
   */
  failureLinesPerMinute: number;
}

const DEFAULT_LIMITS: ServerLimits = {
  connectionsPerNode: 4,
  failedAuthsPerMinute: 10,
  quotaBytes: undefined,
  handshakeTimeoutMs: 10_000,
  pendingConnections: 256,
  pendingPerAddress: 16,
  writerSilenceMs: 90_000,
  inflatingBytes: MAX_PAYLOAD_BYTES,
  v1Connections: 8,
  failureLinesPerMinute: 10,
};

/** Where a {@linkcode BackupServer} listens, what it serves, and how. */
export interface ServerOptions {
  /** The address to listen on. */
  hostname: string;
  /** The TCP port to listen on. */
  port: number;
  /** Where the server's log lines go. */
  log(level: LogLevel, message: string): void;
  /** The largest CHANGE or SNAPSHOT payload a client may send, in bytes (1 GiB unless given). */
  maxPayloadBytes?: number;
  /** The one backup wire v1 reaches; without it, v1 clients are turned away. */
  v1Storage?: ServerStorage;
  /** The node whose backup `v1Storage` is, when it is a node's: v2 shares it. */
  v1Node?: string;
  /** The nodes wire v2 serves; without it, v2 clients are turned away. */
  nodes?: NodeRegistry;
  /** Limits to set other than their defaults. */
  limits?: Partial<ServerLimits>;
  /** Serve over TLS with this certificate; without it, in the clear. */
  tls?: TlsIdentity;
  /** The clock, in ms, that the per-minute limits count by; `performance.now` unless given. */
  now?: () => number;
}

type AnySession = Session | V2Session;

/** A connection being served: its serving, its session once it has one, its peer's group. */
interface Served {
  done: Promise<void>;
  session?: AnySession;
  /** {@linkcode peerGroup} of its peer, worked out once at its accept. */
  group: string;
}

/**
 * Why a connection's TLS handshake was refused, for the operator: a wire v1 client (the
 * Python plugin, which speaks no TLS) or a wire v2 one given a plain `socket:` URL is told
 * from its first byte; anything else that is not TLS by that byte, TLS that failed by its
 * error.
 */
function notTls({ firstByte, message }: TlsRefusal): string {
  if (firstByte === TLS_HANDSHAKE_RECORD) return `TLS handshake failed: ${message}`;
  const notTls = "not TLS: this port speaks TLS only";
  if (firstByte !== undefined && firstByte < V2Type.Hello) {
    return `${notTls}; a wire v1 client (the Python plugin) speaks none: serve it from a root ` +
      `without ${TLS_CERT_NAME}, or move it to wire v2 first (README)`;
  }
  if (firstByte === V2Type.Hello) {
    return `${notTls}; a wire v2 client given a plain socket: URL: give it the socket+tls: URL ` +
      `with the certificate's fingerprint (server init-tls prints it)`;
  }
  return `${notTls} (its first byte was ${
    firstByte === undefined ? "none" : `0x${firstByte.toString(16).padStart(2, "0")}`
  })`;
}

/** The first byte of a TLS handshake record, a ClientHello's. */
const TLS_HANDSHAKE_RECORD = 0x16;

/** How long the server waits after a failed accept (no file descriptor left) to try again. */
const ACCEPT_RETRY_MS = 100;

/**
 * How often the server looks for nodes removed (`server remove-node`) or given a new key
 * while connected: their connections are closed, so a revoked key does not outlive its
 * connection.
 */
const KEY_CHECK_MS = 1_000;

/** How often the counts of failure lines left out are said, once their minute is over. */
const FAILURE_FLUSH_MS = 10_000;

/**
 * A backup server: it accepts and serves connections from its construction until
 * {@linkcode BackupServer.close}.
 */
export class BackupServer {
  /** The largest CHANGE or SNAPSHOT payload a client may send, in bytes. */
  readonly maxPayloadBytes: number;
  /**
   * The most a CHANGE's statements may inflate to: what a record holds (MAX_PAYLOAD_BYTES),
   * whatever `--max-packet-bytes` allows a packet, so no client makes the server inflate more
   * than it could store.
   */
  readonly maxChangeBytes: number;
  /** CHANGE bodies held inflated, all connections together. */
  readonly inflating: InflateBudget;
  /** The limits in force: `options.limits` over the defaults. */
  readonly limits: ServerLimits;
  /** Where the server's log lines go. */
  readonly log: (level: LogLevel, message: string) => void;
  /** The one backup wire v1 reaches; `undefined` when v1 clients are turned away. */
  readonly v1Storage: ServerStorage | undefined;
  /** The nodes wire v2 serves; `undefined` when v2 clients are turned away. */
  readonly nodes: NodeRegistry | undefined;
  #listener: ServerListener;
  /** Every connection being served, from accept to close. */
  #serving = new Map<ServerConn, Served>();
  #writers = new Map<ServerStorage, Writer>();
  #storages = new Map<string, ServerStorage>();
  #connected = new Map<string, number>();
  #failedAuths = new Map<string, number[]>();
  #lastWrite = new Map<string, number>();
  #nextId = 1;
  #accepting: Promise<void>;
  #turningAway = false;
  #closedPending = new WeakSet<ServerConn>();
  /**
   * The peer group (an IPv4 address or an IPv6 /64: peer_group.ts) whose connections were last
   * turned away: said once, not again until a connection is let in or another group is refused.
   */
  #refusedGroup: string | undefined;
  #acceptFailing = false;
  #closing = false;
  #keyCheck: ReturnType<typeof setInterval> | undefined;
  /** The per-connection failure lines, bounded (log_limit.ts). */
  #failures: FailureLog;
  #failureFlush: ReturnType<typeof setInterval>;
  #now: () => number;

  /** Starts listening (over TLS with `options.tls`) and accepting connections at once. */
  constructor(options: ServerOptions) {
    this.log = options.log;
    this.#now = options.now ?? (() => performance.now());
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.maxChangeBytes = Math.min(
      this.maxPayloadBytes,
      MAX_PAYLOAD_BYTES,
      this.limits.inflatingBytes,
    );
    this.inflating = new InflateBudget(this.limits.inflatingBytes);
    this.v1Storage = options.v1Storage;
    this.nodes = options.nodes;
    if (options.v1Node !== undefined && options.v1Storage) {
      this.#storages.set(options.v1Node, options.v1Storage);
    }
    const address = { hostname: options.hostname, port: options.port };
    // Not Deno.listenTls: its connections cannot be closed before their handshake ends.
    this.#listener = options.tls ? listenTls({ ...address, ...options.tls }) : Deno.listen(address);
    const serves = [
      ...(this.nodes ? [`nodes of ${this.nodes.root} (wire v2)`] : []),
      ...(this.v1Storage ? [`${this.v1Storage.url} (wire v1)`] : []),
    ];
    this.log(
      "info",
      `serving ${serves.join(" and ")} on ${this.address}${options.tls ? " over TLS" : ""}`,
    );
    if (this.v1Storage) {
      this.log(
        "warning",
        `wire v1 is allowed: anyone who reaches ${this.address} can read, rewind and write ` +
          `${this.v1Storage.url} without a credential; listen on loopback or a private ` +
          `network, or reach it through SSH, WireGuard or a Tor onion service`,
      );
    }
    this.#failures = new FailureLog(this.log, this.limits.failureLinesPerMinute, this.#now);
    this.#failureFlush = setInterval(() => this.#failures.flush(), FAILURE_FLUSH_MS);
    this.#accepting = this.#accept();
    if (this.nodes) this.#keyCheck = setInterval(() => this.#closeRevoked(), KEY_CHECK_MS);
  }

  /**
   * Closes the connections of nodes whose key is gone (`server remove-node`) or is no longer
   * the one they proved; their next handshake is refused.
   */
  #closeRevoked(): void {
    const keys = new Map<string, { key?: Uint8Array; refused?: string }>();
    for (const { session } of this.#serving.values()) {
      if (!(session instanceof V2Session)) continue;
      const node = session.node;
      if (!node) continue;
      if (!keys.has(node)) {
        try {
          keys.set(node, { key: this.nodes!.key(node) });
        } catch (error) {
          // One others may read is refused at the next handshake, but what it holds still
          // says whether the key this node proved was replaced: a new key left 0644 must not
          // keep the old one connected. One that holds no key is that key gone.
          if (error instanceof KeyFileError) {
            keys.set(node, { key: error.key, refused: error.message });
          } else {
            // Unreadable for now (its file being replaced, say): looked at again next time.
            continue;
          }
        }
      }
      const { key, refused } = keys.get(node)!;
      if (key && session.provedKey(key)) continue;
      const why = key
        ? `node ${node}'s key was replaced (server add-node)`
        : refused ?? `node ${node}'s key was removed (server remove-node)`;
      this.log("warning", `${session.name}: closing: ${why}; its backup stays`);
      session.close();
    }
  }

  /**
   * Logs a per-connection failure line of `kind`, which anyone who reaches the port can
   * make: at most `failureLinesPerMinute` of each kind a minute, then a count of the others.
   */
  logFailure(kind: FailureKind, level: LogLevel, message: string): void {
    this.#failures.line(kind, level, message);
  }

  /** The address it listens on, `host:port` (IPv6 in brackets). */
  get address(): string {
    const { hostname, port } = this.#listener.addr;
    return formatHostPort(hostname, port);
  }

  /** The port it listens on. */
  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: ServerConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing) return;
        // Thrown on, any of these would end the server and every node's connection. A peer
        // that reset its connection before it was accepted: the next one.
        if (
          error instanceof Deno.errors.NotConnected ||
          error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.ConnectionAborted
        ) {
          continue;
        }
        // Out of file descriptors (EMFILE) or memory: the listener stays; accepting resumes
        // once some are gone.
        if (!this.#acceptFailing) {
          this.log("error", `cannot accept connections: ${(error as Error).message}`);
        }
        this.#acceptFailing = true;
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      if (this.#acceptFailing) this.log("info", "accepting connections again");
      this.#acceptFailing = false;
      const host = conn.remoteAddr.hostname;
      const group = peerGroup(host);
      const admission = admit(this.#pendingConns(), host, this.limits);
      if (admission.refuse) {
        closeQuietly(conn);
        if (this.#refusedGroup !== group) {
          this.logFailure(
            "pending",
            "warning",
            `turning connections from ${group} away: it has ${this.limits.pendingPerAddress} ` +
              `awaiting a handshake`,
          );
        }
        this.#refusedGroup = group;
        continue;
      }
      this.#refusedGroup = undefined;
      if (admission.evict) {
        this.#closedPending.add(admission.evict);
        closeQuietly(admission.evict);
        if (!this.#turningAway) {
          const from = this.#serving.get(admission.evict)?.group;
          this.logFailure(
            "pending",
            "warning",
            `${this.limits.pendingConnections} connections are awaiting a handshake: closing ` +
              `the oldest of the address holding the most for each new one (first from ${from})`,
          );
        }
        this.#turningAway = true;
      } else {
        this.#turningAway = false;
      }
      conn.setNoDelay(true);
      conn.setKeepAlive(true);
      const entry: Served = { done: Promise.resolve(), group };
      this.#serving.set(conn, entry);
      entry.done = this.#serve(this.#nextId++, conn, entry).finally(() => {
        this.#serving.delete(conn);
      });
    }
  }

  /** Tells the protocol from the first byte, then serves the connection until it ends. */
  async #serve(
    id: number,
    conn: ServerConn,
    entry: { session?: AnySession },
  ): Promise<void> {
    const peer = formatHostPort(conn.remoteAddr.hostname, conn.remoteAddr.port);
    const name = `connection ${id} from ${peer}`;
    const handshakeBy = performance.now() + this.limits.handshakeTimeoutMs;
    const reader = new PacketReader(conn, this.maxPayloadBytes);
    let first: number | null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      first = await Promise.race([
        reader.peek(),
        new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), this.limits.handshakeTimeoutMs);
        }),
      ]);
    } catch {
      first = null;
    } finally {
      clearTimeout(timer);
    }
    let session: AnySession | undefined;
    if (first === V2Type.Hello && this.nodes) {
      reader.framing = V2_HANDSHAKE_FRAMING;
      session = new V2Session(id, conn, this, reader, handshakeBy);
    } else if (first !== null && first < V2Type.Hello && this.v1Storage) {
      if (this.#makeRoomForV1(name)) session = new Session(id, conn, this, this.v1Storage, reader);
    } else if (first !== null) {
      const v2Client = first >= V2Type.Hello;
      this.logFailure(
        "wire",
        "warning",
        `${name}: refused: it speaks wire ${v2Client ? "v2" : "v1"}, which ` +
          `this server does not serve` +
          (v2Client ? "" : ` (start it with --allow-v1 to serve one backup to v1)`),
      );
      // One answer the client understands, so it stops with why instead of retrying.
      await writeFully(
        conn,
        v2Client
          ? encodeError({
            code: ErrorCode.Version,
            version: 0,
            message: "this server serves one backup over wire v1 only: remove the node's " +
              "backup.credential, or ask for a node on a server of nodes",
          })
          : encodeVersionPacket(PacketType.Nack, 0),
      ).catch(() => {});
    }
    if (first === null && conn.tlsRefused) {
      this.logFailure("tls", "warning", `${name}: ${notTls(conn.tlsRefused)}`);
    }
    if (!session || this.#closing) {
      closeQuietly(conn);
      return;
    }
    entry.session = session;
    // Its disconnect is said when its connect was, so the two lines pair up under a flood.
    const said = this.#failures.line("connection", "info", `${name}: connected`);
    try {
      await session.run();
    } finally {
      for (const [storage, writer] of this.#writers) {
        if (writer === session) this.#writers.delete(storage);
      }
      // By the session's name: a node's says which node left. One that proved its key is no
      // flood's: always said.
      if (said || (session instanceof V2Session && session.authenticated)) {
        this.log("info", `${session.name}: disconnected`);
      }
    }
  }

  /**
   * Whether a new wire v1 connection (`name`) may be served: under `v1Connections`, or once
   * the v1 connection idle longest that is not the writer is closed for it.
   */
  #makeRoomForV1(name: string): boolean {
    const v1: Session[] = [];
    for (const { session } of this.#serving.values()) {
      if (session instanceof Session && !session.closed) v1.push(session);
    }
    const cap = this.limits.v1Connections;
    if (v1.length < cap) return true;
    const writer = this.#writers.get(this.v1Storage!);
    const idlest = v1.filter((s) => s !== writer)
      .sort((a, b) => a.lastActive - b.lastActive)[0];
    if (!idlest) {
      this.logFailure(
        "v1Limit",
        "warning",
        `${name}: refused: ${cap} wire v1 connections are open already, the writer among them`,
      );
      return false;
    }
    const idle = Math.round((performance.now() - idlest.lastActive) / 1000);
    this.logFailure(
      "v1Limit",
      "warning",
      `${name}: ${cap} wire v1 connections are open already: closing ${idlest.name}, ` +
        `idle for ${idle} s, the longest of those that are not the writer`,
    );
    idlest.close();
    return true;
  }

  /**
   * Connections with no session yet, or a v2 session that has not authenticated, oldest first
   * (a Map keeps its insertion order).
   */
  #pendingConns(): Pending<ServerConn>[] {
    const pending: Pending<ServerConn>[] = [];
    for (const [conn, { session, group }] of this.#serving) {
      // One closed for a newer one counts no more, though its serving has yet to end.
      if (this.#closedPending.has(conn)) continue;
      if (!session || (session instanceof V2Session && !session.authenticated)) {
        pending.push({ conn, group });
      }
    }
    return pending;
  }

  /**
   * Makes `session` the one writer of `storage`; returns who else is, if someone is. A wire v2
   * writer that heartbeat and is silent past `writerSilenceMs` is closed for another v2
   * session instead. A closed `session` gets its close reason thrown: a write it took in
   * before it closed (taken over, its node removed) is dropped, never takes the backup back
   * from the one that took it over (closing that one), nor goes on as its writer's.
   */
  claimWriter(session: Writer, storage: ServerStorage): Writer | undefined {
    session.closing.throwIfAborted();
    const writer = this.#writers.get(storage);
    if (writer === session) return undefined;
    if (writer) {
      const silent = writer.silentMs?.();
      if (
        silent === undefined || session.silentMs === undefined ||
        silent < this.limits.writerSilenceMs
      ) {
        return writer;
      }
      this.log(
        "warning",
        `${session.name}: takes over ${storage.url} from ${writer.name}, silent for ` +
          `${Math.round(silent / 1000)} s (left open when its node's host or network went ` +
          `down); closing that one`,
      );
      writer.close();
    }
    this.log("info", `${session.name}: is now the writer of ${storage.url}`);
    this.#writers.set(storage, session);
    return undefined;
  }

  /**
   * Node `node`'s backup, opened on its first use, and again once the operator moved or
   * removed the one opened: held on, it would refuse the node (its directory gone) or serve
   * the copy moved away. One not there yet is made empty to `create` it (for a write), else
   * `undefined`: a look at it makes nothing.
   */
  storageFor(node: string, create?: true): ServerStorage;
  /** Node `node`'s backup, `undefined` when it is not made yet and `create` is false. */
  storageFor(node: string, create: boolean): ServerStorage | undefined;
  storageFor(node: string, create = true): ServerStorage | undefined {
    const dir = this.nodes!.backupDir(node);
    let storage = this.#storages.get(node);
    if (storage && storage !== this.v1Storage && storage.moved()) {
      // This node's other connections (of a key just removed, closing) still use it.
      if ((this.#connected.get(node) ?? 0) > 1) {
        throw new Error(
          `its backup "${dir}" was moved or removed while connections of the node are open: ` +
            `it is opened again once they close`,
        );
      }
      this.log("info", `node ${node}: "${dir}" was moved or removed: opening what is there now`);
      storage.close();
      this.#writers.delete(storage);
      this.#storages.delete(node);
      storage = undefined;
    }
    if (!storage) {
      const log = (m: string) => this.log("info", `node ${node}: ${m}`);
      storage = create
        ? ServerStorage.open(`file://${dir}`, dir, log)
        : ServerStorage.openExisting(`file://${dir}`, dir, log);
      if (storage) this.#storages.set(node, storage);
    }
    return storage;
  }

  /** Counts a connection of `node`; `false` when it already holds its limit. */
  enter(node: string): boolean {
    const count = this.#connected.get(node) ?? 0;
    if (count >= this.limits.connectionsPerNode) return false;
    this.#connected.set(node, count + 1);
    return true;
  }

  /** Counts a connection of `node` as closed, one {@linkcode BackupServer.enter} counted. */
  leave(node: string): void {
    this.#connected.set(node, (this.#connected.get(node) ?? 1) - 1);
  }

  /** Notes that `node`'s backup stored a write now, for `GET /metrics`. */
  wrote(node: string): void {
    this.#lastWrite.set(node, Date.now() / 1000);
  }

  /** Each node's backup, last write and connections, for `GET /metrics`. */
  nodeStats(): NodeStats[] {
    return (this.nodes?.list() ?? []).map((node) => {
      const opened = this.#storages.get(node);
      let version = 0;
      let bytes = 0;
      if (opened) {
        ({ version, bytes } = opened.state());
      } else if (existsSync(this.nodes!.backupDir(node))) {
        const dir = this.nodes!.backupDir(node);
        const description = new FileBackupReader(`file://${dir}`, dir).describe();
        version = description.lastVersion;
        bytes = description.bytes;
      }
      return {
        node,
        version,
        bytes,
        lastWrite: this.#lastWrite.get(node),
        connections: this.#connected.get(node) ?? 0,
      };
    });
  }

  /**
   * Whether `host`'s group (an IPv6 peer's /64: peer_group.ts) failed to authenticate too
   * often in the last minute. Never a loopback address: behind a Tor onion service or a local
   * proxy every peer has it, so ten failures from anyone who knows the address would keep
   * every node out.
   */
  authBlocked(host: string, now = this.#now()): boolean {
    if (isLoopback(host)) return false;
    const group = peerGroup(host);
    const recent = (this.#failedAuths.get(group) ?? []).filter((t) => now - t < 60_000);
    if (recent.length === 0) this.#failedAuths.delete(group);
    else this.#failedAuths.set(group, recent);
    return recent.length >= this.limits.failedAuthsPerMinute;
  }

  /**
   * Counts a failed authentication from `host`'s group for {@linkcode BackupServer.authBlocked};
   * a loopback address is never counted.
   */
  authFailed(host: string, now = this.#now()): void {
    // Never turned away (authBlocked), so not counted.
    if (isLoopback(host)) return;
    const group = peerGroup(host);
    // Bounded: a flood from many groups keeps at most this many entries.
    if (this.#failedAuths.size > 10_000) this.#failedAuths.clear();
    this.#failedAuths.set(group, [...(this.#failedAuths.get(group) ?? []), now].slice(-100));
  }

  /**
   * Stops accepting, closes every connection and the backups. A change is written and synced
   * in one synchronous step, so no record is ever left half-written; one still waiting for
   * room to inflate is dropped. The client's resend rule, after it reconnects, finds what
   * became of a change whose ACK had not gone out.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#keyCheck);
    clearInterval(this.#failureFlush);
    this.#listener.close();
    await this.#accepting;
    const storages = [...this.#storages.values(), ...(this.v1Storage ? [this.v1Storage] : [])];
    // A connection waiting for a compaction is answered by its end, not after it.
    for (const storage of storages) storage.stopCompaction();
    for (const [conn, { session }] of this.#serving) {
      if (session) session.close();
      else conn.close();
    }
    await Promise.all([...this.#serving.values()].map((entry) => entry.done));
    for (const storage of new Set(storages)) storage.close();
    this.#failures.flush(true);
    this.log("info", "stopped");
  }
}
