/**
 * The `socket:` backend: the plugin's backup lives on a backup server (ours, or the Python
 * `backup-cli server`), spoken to in wire v1. A change is acknowledged to lightningd only
 * after the server's ACK for it. A lost connection is retried with backoff; after
 * reconnecting it asks METADATA and resends only when the server lacks the change (the
 * Python rule). Anything else it cannot explain stops the node.
 *
 * @module
 */
import type { Backend, BackupState, Change, ConnectionStatus } from "../backend.ts";
import { formatBackupId } from "../../format/segment.ts";
import { formatHostPort, parseBackupUrl } from "../url.ts";
import {
  type CompactStats,
  decodeCompactResult,
  decodeMetadata,
  decodeVersion,
  encodeChange,
  encodePacket,
  encodeSnapshot,
  encodeSnapshotHead,
  encodeVersionPacket,
  type Metadata,
  type Packet,
  packetName,
  PacketType,
} from "../../wire/packets.ts";
import {
  ConnectionLostError,
  refusal,
  ServerRefusedError,
  type SocketUrl,
  WireConnection,
} from "./connection.ts";
import {
  decodeError,
  decodeJson,
  decodeMetadataV2,
  decodePlace,
  decodeVersionFrame,
  encodeChangeV2,
  encodeFrame,
  encodeSealedChange,
  encodeSealedInitFile,
  encodeSnapshotFile,
  encodeSnapshotV2,
  encodeVersionFrame,
  ErrorCode,
  type Place,
  PROXIED_RAW_BODY_BYTES,
  RAW_BODY_BYTES,
  type V2Metadata,
  v2Name,
  V2Type,
} from "../../wire/packets_v2.ts";
import { unframed } from "../../wire/send_data.ts";
import { sendFileBytes } from "./send_file.ts";
import { deflateFile } from "../../wire/deflate.ts";
import { removeIfExists } from "../../fs/exists.ts";
import { CREDENTIAL_ENV, type NodeCredential } from "./credential.ts";
import type { DataKey } from "../../crypto/data_key.ts";
import { checkServerKey, type LaidOut, layOutChange } from "./sealed_layout.ts";
import type { SealedCompactionRequest } from "./sealed_compaction.ts";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./options.ts";
import { pause, StoppingError, unlessStopping } from "../stopping.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { cliCommand } from "../../fs/advised_command.ts";

/** The lightningd log levels a `socket:` backup logs at. */
export type SocketLogLevel = "info" | "unusual" | "broken";

/** How a `socket:` backup connects, retries and logs, and with which credential and key. */
export interface SocketBackendOptions {
  /** How patient it is; {@linkcode DEFAULT_RETRY_POLICY} unless given. */
  policy?: RetryPolicy;
  /** Where it says what a reconnect found, and that it gave up; nowhere unless given. */
  log?: (level: SocketLogLevel, message: string) => void;
  /** Milliseconds, monotonic; tests and the plugin pass `performance.now`. */
  now?: () => number;
  /** Waits `ms` milliseconds before a reconnect (a timer unless given; tests need not wait). */
  sleep?: (ms: number) => Promise<void>;
  /**
   * The plugin's lifetime (see stopping.ts): once it aborts, every wait ends, the connection
   * closes, and no write goes out again.
   */
  signal?: AbortSignal;
  /** The node's credential: with it, wire v2 to a server of ours; without, wire v1. */
  credential?: NodeCredential;
  /**
   * An encrypted backup's data key (wire v2 only): each change is sealed here, for its place
   * in the server's files (sealed_layout.ts), and the server stores what it cannot read.
   */
  key?: DataKey;
  /** An encrypted backup's live log rolls past this many bytes (the file writer's rule). */
  segmentBytes?: number;
}

/**
 * Has the server compact over wire v1 on `conn` (COMPACT, then COMPACT_RES), as the Python
 * plugin asks. A REQ_METADATA goes first, bounded as any answer: the Python server serves one
 * connection at a time and reads none other while one is open, so such a server is told apart
 * in seconds and no COMPACT is left queued on it. `unanswered` is the error for that, when
 * the caller can say why (another connection is open); otherwise the timeout is rethrown.
 */
export async function compactOverV1(
  conn: WireConnection,
  destination: string,
  compactTimeoutMs: number,
  unanswered?: string,
): Promise<CompactStats> {
  await conn.send(encodePacket(PacketType.ReqMetadata));
  let metadata;
  try {
    metadata = await conn.receive();
  } catch (error) {
    if (unanswered !== undefined && /timed out/.test((error as Error).message)) {
      throw new RemoteBackupError(unanswered);
    }
    throw error;
  }
  if (metadata.type === PacketType.Nack) {
    // Our server, unless it serves one backup with --allow-v1.
    throw new RemoteBackupError(
      `Cannot compact backup: the server at ${destination} refused wire v1 (NACK): it ` +
        `serves nodes that prove their key: set ${CREDENTIAL_ENV} to the node's ` +
        `backup.credential file (made by "server add-node")`,
    );
  }
  if (metadata.type !== PacketType.Metadata) {
    throw new RemoteBackupError(
      `Cannot compact backup: the server at ${destination} answered REQ_METADATA with ` +
        `${packetName(metadata.type)}: it is not a backup server, or a broken one`,
    );
  }
  await conn.send(encodePacket(PacketType.Compact));
  const reply = await conn.receive(compactTimeoutMs);
  if (reply.type !== PacketType.CompactRes) {
    throw new RemoteBackupError(
      `Cannot compact backup: the server at ${destination} answered COMPACT with ` +
        `${packetName(reply.type)}: it is not a backup server, or a broken one`,
    );
  }
  return decodeCompactResult(reply);
}

/** The server gave an answer that means the backup cannot be trusted to go on. */
export class RemoteBackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RemoteBackupError";
  }
}

/**
 * The connection was lost, and reconnecting as the policy allows did not help: what was sent
 * last may be stored on the server or not.
 */
export class GaveUpError extends RemoteBackupError {
  constructor(message: string) {
    super(message);
    this.name = "GaveUpError";
  }
}

export function socketUrl(url: string): SocketUrl {
  const parsed = parseBackupUrl(url);
  if (parsed.scheme !== "socket") throw new Error(`"${url}" is not a socket: URL`);
  return parsed;
}

/** What a write expects of the server: its version before, and after, the write. */
interface WriteStep {
  what: string;
  /** The packet, or how to build it once connected (a sealed change needs the place). */
  packet: Uint8Array | (() => Promise<Uint8Array>);
  /** Sends what follows the packet (DATA), before the answer is read. */
  follow?: (conn: WireConnection) => Promise<void>;
  /** The wait for the answer, when it is longer than the policy's timeout. */
  answerTimeoutMs?: number;
  /** Called once the server acknowledged the write. */
  acked?: () => void;
  before: number;
  after: number;
  /** A snapshot or base: no change follows it, so there is nothing to rewind. */
  base?: boolean;
  /** A change that repeats the version: only the record count tells before from after. */
  repeat?: boolean;
  /** For a repeat: the server's record count before it; asked before it is sent if unknown. */
  countBefore?: number;
}

/** The least pause before a write refused as BUSY goes again. */
const BUSY_PAUSE_MS = 1_000;

/** A backup on a backup server, reached at a `socket:` URL (see the module's doc). */
export class SocketBackend implements Backend {
  /** The parsed URL: the server's host and port, and its proxy and TLS trust when given. */
  readonly target: SocketUrl;
  /** The server as logs and `backup-status` name it (with its proxy, and the node for wire v2). */
  readonly destination: string;
  #policy: RetryPolicy;
  #log: (level: SocketLogLevel, message: string) => void;
  #now: () => number;
  #sleep: (ms: number) => Promise<void>;
  readonly #signal: AbortSignal | undefined;
  readonly #onStop = () => this.close();
  #conn: WireConnection | undefined;
  #version = 0;
  #prevVersion = 0;
  /** The server's record count, while we know it (a v1 server's rewind leaves it unclear). */
  #count: number | undefined = 0;
  /** What the server said on the last connect. */
  #metadata: Metadata = { protocol: 1, version: 0, prevVersion: 0, versionCount: 0 };
  #status: ConnectionStatus;
  #failure: string | undefined;
  #ready: Promise<void> = Promise.resolve();
  readonly #credential: NodeCredential | undefined;
  readonly #key: DataKey | undefined;
  /** Where the next sealed change goes; asked again after a reconnect or a rewind. */
  #place: Place | undefined;
  /** The server's backup id, once asked (see {@linkcode backupIdHex}). */
  #backupId: Uint8Array | undefined;
  /**
   * After a rewind of an encrypted backup: the next change starts a new log, so that it is
   * not sealed for the place of the dropped one (which the server may have kept).
   */
  #rollNext = false;
  readonly #segmentBytes: number | undefined;
  #writing = false;
  #lastExchange = 0;
  #beatTimer: ReturnType<typeof setTimeout> | undefined;
  /** A heartbeat on the wire; a write waits for it. */
  #beat: Promise<void> | undefined;
  /** Closed: a connect still under way is dropped, and no heartbeat is armed. */
  #closed = false;

  private constructor(readonly url: string, options: SocketBackendOptions) {
    this.target = socketUrl(url);
    this.#credential = options.credential;
    this.#key = options.key;
    this.#segmentBytes = options.segmentBytes;
    if (this.#key && !this.#credential) {
      throw new RemoteBackupError(
        `an encrypted backup needs wire v2 (a server of cln-backup and the node's ` +
          `backup.credential): a wire v1 server stores what it is sent, in the clear`,
      );
    }
    this.destination = formatHostPort(this.target.host, this.target.port) +
      (this.target.proxy
        ? ` through SOCKS5 proxy ${formatHostPort(this.target.proxy.host, this.target.proxy.port)}`
        : "") +
      (this.#credential ? ` (wire v2, node ${this.#credential.node})` : "");
    this.#policy = options.policy ?? DEFAULT_RETRY_POLICY;
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? (() => performance.now());
    this.#signal = options.signal;
    this.#sleep = options.sleep ?? ((ms) => pause(ms, this.#signal));
    // What is in flight on the connection ends with it. Removed again by close: an async
    // copy reopens a failing destination all the node's life, and the listener would keep
    // each closed one.
    this.#signal?.addEventListener("abort", this.#onStop, { once: true });
    this.#status = {
      destination: this.destination,
      state: "disconnected",
      reconnects: 0,
      last_ack_ms: null,
    };
  }

  /** Connects and learns where the server's backup stands, retrying as for a change. */
  static async connect(url: string, options: SocketBackendOptions = {}): Promise<SocketBackend> {
    const backend = SocketBackend.open(url, options);
    await backend.ready();
    return backend;
  }

  /**
   * Starts connecting and returns at once, so the plugin can answer lightningd's
   * `getmanifest` while it connects; {@linkcode ready} tells when it knows where the
   * server's backup stands.
   */
  static open(url: string, options: SocketBackendOptions = {}): SocketBackend {
    const backend = new SocketBackend(url, options);
    backend.#ready = backend.#retrying("connecting", () => Promise.resolve()).then(() => {
      backend.#version = backend.#metadata.version;
      backend.#prevVersion = backend.#metadata.prevVersion;
      backend.#count = backend.#metadata.versionCount;
    });
    // Whoever needs the backup awaits ready(); a failure nobody awaited yet is not a crash.
    backend.#ready.catch(() => {});
    return backend;
  }

  /** Resolves once connected and told the server's versions; rejects with why not. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Where the server's backup stands: as the server last said, moved by the writes since. */
  state(): BackupState {
    return {
      version: this.#version,
      rewindVersion: this.#rewindVersion(),
      records: this.#count ?? 0,
      // The server decides its own tail, at the first write after it opened the backup.
      tail: undefined,
      connection: { ...this.#status },
      ...(this.#key ? { encrypted: true } : {}),
    };
  }

  /**
   * The version the last change can be dropped back to: the one just before it (a change
   * follows its backup by one). Any other prev_version is none: a v1 server's 0 after a
   * snapshot (the Python server's, and ours), an older v2 server's for a base with no change
   * after it, which a copy made from a snapshot took for a change it could drop back to 0.
   */
  #rewindVersion(): number | undefined {
    return this.#prevVersion === this.#version - 1 ? this.#prevVersion : undefined;
  }

  async append(change: Change): Promise<void> {
    const repeat = change.version === this.#version;
    const key = this.#key;
    if (key) {
      let laid: LaidOut | undefined;
      return await this.#write({
        what: `change ${change.version}`,
        packet: async () => {
          this.#place ??= await this.#askPlace();
          laid = layOutChange(
            key,
            this.#place,
            change,
            this.#version,
            this.#segmentBytes,
            this.#rollNext,
          );
          return encodeSealedChange(laid.packet);
        },
        acked: () => {
          this.#place = laid!.next;
          this.#rollNext = false;
        },
        before: this.#version,
        after: change.version,
        repeat,
        countBefore: repeat ? this.#count : undefined,
      });
    }
    await this.#write({
      what: `change ${change.version}`,
      packet: this.#credential
        ? encodeChangeV2(
          change.version,
          change.statements,
          this.target.proxy ? PROXIED_RAW_BODY_BYTES : RAW_BODY_BYTES,
        )
        : encodeChange(change.version, change.statements),
      before: this.#version,
      after: change.version,
      repeat,
      countBefore: repeat ? this.#count : undefined,
    });
  }

  async rewind(): Promise<void> {
    const to = this.#prevVersion;
    await this.#write({
      what: `rewind to ${to}`,
      packet: this.#credential
        ? encodeVersionFrame(V2Type.Rewind, to)
        : encodeVersionPacket(PacketType.Rewind, to),
      before: this.#version,
      after: to,
    });
    // A v1 server still counts the dropped record, ours does not.
    this.#count = undefined;
    this.#place = undefined;
    if (this.#key) this.#rollNext = true;
  }

  /**
   * Makes the empty backup on the server an encrypted one holding the file `base` (a sealed
   * base segment of the snapshot at `version`; none when the node has no database yet), with
   * `wrappedKey` (key.json) beside it: `init --encrypt`. The base goes a chunk at a time
   * (SEALED_INIT_FILE), never whole in memory here or on the server.
   */
  async initSealed(
    wrappedKey: Uint8Array,
    base: string | undefined,
    version: number,
  ): Promise<void> {
    const size = base ? Deno.statSync(base).size : 0;
    try {
      await this.#write({
        what: `encrypted snapshot ${version}`,
        packet: encodeSealedInitFile(wrappedKey, size),
        follow: base ? (conn) => sendFileBytes(conn, base, size) : undefined,
        // The server reads the base through before it answers: minutes for a large node.
        answerTimeoutMs: this.#policy.compactTimeoutMs,
        before: this.#version,
        after: version,
        base: true,
      });
    } catch (error) {
      throw this.#olderServer(error, V2Type.SealedInitFile);
    }
    this.#place = undefined;
  }

  /**
   * What a compaction of this backup made here needs, when it is encrypted (the server holds
   * no key and cannot compact it): fold up to `version`, working in `scratch`.
   */
  sealedCompaction(version: number, scratch: string): SealedCompactionRequest | undefined {
    if (!this.#key || !this.#credential) return undefined;
    return {
      url: this.url,
      target: this.target,
      credential: this.#credential,
      key: this.#key.bytes,
      version,
      scratch,
      timeoutMs: this.#policy.timeoutMs,
      compactTimeoutMs: this.#policy.compactTimeoutMs,
    };
  }

  /**
   * The id of the server's backup (from PLACE, wire v2), asked once; `undefined` over wire v1
   * (the Python server's backup has none) or from a server older than PLACE, which calls it a
   * bad packet. Any other error the server answers is thrown, saying what it said.
   */
  async backupIdHex(): Promise<string | undefined> {
    await this.#ready;
    if (!this.#credential) return undefined;
    if (this.#backupId !== undefined) return formatBackupId(this.#backupId);
    if (this.#beat) await this.#beat;
    // The heartbeat leaves the connection be meanwhile, as during a write.
    this.#writing = true;
    try {
      await this.#retrying("asking the backup's id", async () => {
        const reply = await this.#conn!.request(encodeFrame(V2Type.ReqPlace));
        if (reply.type !== V2Type.Error) {
          this.#backupId = decodePlace(reply).backupId;
          return;
        }
        const { code, message } = decodeError(reply);
        // A server older than PLACE calls it a bad packet: its backup has no id.
        if (code === ErrorCode.BadPacket) return;
        throw new RemoteBackupError(
          `the server at ${this.destination} refused to say its backup's id (PLACE): ` +
            `${message}; until it does, which backup it holds cannot be checked: fix what it ` +
            `says (or ask its operator), then try again`,
        );
      });
    } finally {
      this.#writing = false;
      this.#lastExchange = performance.now();
    }
    return this.#backupId && formatBackupId(this.#backupId);
  }

  /** Where the server puts the next record (PLACE), checked against the node's key. */
  async #askPlace(): Promise<Place> {
    const reply = await this.#conn!.request(encodeFrame(V2Type.ReqPlace));
    if (reply.type === V2Type.Error) {
      throw new RemoteBackupError(refusal(reply, "PLACE (an older server?)").message);
    }
    const place = decodePlace(reply);
    try {
      checkServerKey(place, this.#key, this.destination);
    } catch (error) {
      throw new RemoteBackupError((error as Error).message);
    }
    return place;
  }

  /**
   * Asks the server to compact the backup (COMPACT), on a connection of its own so that the
   * writes never wait behind it; waits at most the policy's `compactTimeoutMs`, less when
   * `signal` aborts. Any failure is one {@linkcode RemoteBackupError}; the writes go on.
   */
  async compactOnServer(signal?: AbortSignal): Promise<CompactStats> {
    let conn: WireConnection | undefined;
    const abort = () => conn?.close();
    signal?.addEventListener("abort", abort);
    try {
      conn = await WireConnection.open(this.target, this.#policy.timeoutMs, this.#credential);
      if (signal?.aborted) throw new ConnectionLostError("the plugin is stopping");
      if (this.#credential) {
        await conn.send(encodeFrame(V2Type.Compact));
        const reply = await conn.receive(this.#policy.compactTimeoutMs);
        if (reply.type === V2Type.Error) {
          throw new RemoteBackupError(`Cannot compact backup: ${decodeError(reply).message}`);
        }
        return decodeJson<CompactStats>(reply, V2Type.CompactRes);
      }
      return await compactOverV1(
        conn,
        this.destination,
        this.#policy.compactTimeoutMs,
        this.#status.state === "connected"
          ? `Cannot compact backup: the server at ${this.destination} does not answer a ` +
            `second connection while the node's is open: it serves one connection at a ` +
            `time, as the Python backup-cli server does, so it cannot compact while the node ` +
            `runs. Nothing changed, and the node's writes go on. cln-backup's server ` +
            `compacts beside the writes: convert the server's storage ` +
            `("${cliCommand("upgrade", "<its URL>")}") and serve it with ` +
            `"${
              cliCommand("server", "<its URL> <addr:port> --allow-v1")
            }"; or compact it while lightningd is ` +
            `stopped ("${cliCommand("compact", shellQuote(this.url))}")`
          : undefined,
      );
    } catch (error) {
      if (error instanceof RemoteBackupError) throw error;
      throw new RemoteBackupError(
        `Cannot compact backup: the server at ${this.destination} gave no answer to COMPACT ` +
          `(${(error as Error).message}); a server whose compaction fails closes the ` +
          `connection: see its log. The backup is as it was, and the node's writes go on`,
      );
    } finally {
      signal?.removeEventListener("abort", abort);
      conn?.close();
    }
  }

  /** Never called: {@linkcode state} shows no tail, as the server cuts its own. */
  cutTail(): Promise<string> {
    return Promise.resolve("no torn tail to cut: the server decides its own");
  }

  /**
   * Stores the database at `path`, a snapshot at `version`, as the first record of an empty
   * backup (init). It is deflated into `scratch`, then sent a chunk at a time: never whole in
   * memory here, nor on our server. Over v2 in DATA packets after SNAPSHOT_FILE; over v1 as
   * one SNAPSHOT, the Python plugin's packet, its header first.
   */
  async storeSnapshotFile(version: number, path: string, scratch: string): Promise<void> {
    const v2 = this.#credential !== undefined;
    const packed = `${scratch}/snapshot-${version}.zlib`;
    try {
      await deflateFile(path, packed, 1);
      const size = Deno.statSync(packed).size;
      await this.#write({
        what: `snapshot ${version}`,
        packet: v2 ? encodeSnapshotFile(version, size) : encodeSnapshotHead(version, size),
        follow: (conn) => sendFileBytes(conn, packed, size, v2 ? undefined : unframed),
        // The server inflates it and makes the base before it answers: minutes for a large node.
        answerTimeoutMs: this.#policy.compactTimeoutMs,
        before: this.#version,
        after: version,
        base: true,
      });
    } catch (error) {
      throw v2 ? this.#olderServer(error, V2Type.SnapshotFile) : error;
    } finally {
      removeIfExists(packed);
    }
  }

  /** A server from before `type` refuses it as a bad packet naming it: say what to do. */
  #olderServer(error: unknown, type: V2Type): unknown {
    const named = `type 0x${type.toString(16)}`;
    if (!(error instanceof RemoteBackupError) || !error.message.includes(named)) return error;
    return new RemoteBackupError(
      `the server at ${this.destination} is older than this cln-backup and does not know ` +
        `${v2Name(type)}: update the server to this version, then try again`,
    );
  }

  /** Stores a snapshot as the first record of an empty backup, in one packet. */
  async storeSnapshot(version: number, database: Uint8Array): Promise<void> {
    await this.#write({
      what: `snapshot ${version}`,
      packet: this.#credential
        ? encodeSnapshotV2(version, database)
        : encodeSnapshot(version, database),
      before: this.#version,
      after: version,
      base: true,
    });
  }

  /** Sends `step.packet` until the server ACKs it, reconnecting as the policy allows. */
  async #write(step: WriteStep): Promise<void> {
    if (this.#failure) {
      throw new RemoteBackupError(`an earlier write failed: ${this.#failure}`);
    }
    if (this.#beat) await this.#beat;
    if (this.#signal?.aborted) throw new StoppingError();
    // Written to again after a close: the lifetime ends its connection again (adding the
    // same listener twice adds it once).
    if (this.#closed) this.#signal?.addEventListener("abort", this.#onStop, { once: true });
    this.#closed = false;
    this.#writing = true;
    let count = this.#count;
    // When the server first refused the write as held by another connection (BUSY).
    let heldSince: number | undefined;
    try {
      await this.#retrying(`sending ${step.what}`, async (reconnected) => {
        if (reconnected) {
          count = this.#metadata.versionCount;
          // A repeat whose count was unknown was not sent (the count is asked first).
          if (step.repeat) step.countBefore ??= count;
          if (this.#afterReconnect(step) === "done") return;
        }
        const conn = this.#conn!;
        // The count is unknown after a rewind (a v1 server may still count the dropped record,
        // the Python one does; ours does not). Without it, a repeat lost with its connection
        // would be taken for stored.
        if (step.repeat && step.countBefore === undefined) {
          step.countBefore = count = await this.#askCount(conn);
        }
        const follow = step.follow;
        let sent: number;
        let reply: Packet;
        const since = this.#now();
        for (let tries = 0;; tries++) {
          const packet = typeof step.packet === "function" ? await step.packet() : step.packet;
          sent = this.#now();
          reply = await conn.request(packet, follow && (() => follow(conn)), step.answerTimeoutMs);
          if (follow || !this.#heldByAnother(step, reply, since, tries === 0)) break;
          heldSince ??= since;
          // At most one a second, whatever the reconnects' pause: each is a line in the server's log.
          await this.#sleep(Math.max(this.#policy.retryDelayMs, BUSY_PAUSE_MS));
        }
        this.#answer(step, reply);
        if (heldSince !== undefined) {
          // The "waiting up to" line is not the operator's last word on it.
          this.#log(
            "info",
            `${step.what}: the server handed the backup over after ` +
              `${Math.round((this.#now() - heldSince) / 1000)} s: writing again`,
          );
          heldSince = undefined;
        }
        step.acked?.();
        this.#status.last_ack_ms = Math.round((this.#now() - sent) * 1000) / 1000;
        if (count !== undefined) count++;
      });
      this.#prevVersion = step.base ? step.after : step.before;
      this.#version = step.after;
      this.#count = count;
    } catch (error) {
      this.#failure = (error as Error).message;
      this.#status.state = "failed";
      throw error;
    } finally {
      this.#writing = false;
      this.#lastExchange = performance.now();
    }
    this.#scheduleBeat();
  }

  /**
   * Arms the heartbeat on a wire v2 connection, unless it is armed: one timer, which when it
   * fires waits again while a write came since (no timer is set up per write).
   */
  #scheduleBeat(delay = this.#policy.heartbeatMs): void {
    if (this.#beatTimer !== undefined || this.#closed) return;
    if (!this.#credential || !this.#conn || !(this.#policy.heartbeatMs > 0)) return;
    this.#beatTimer = setTimeout(() => {
      this.#beatTimer = undefined;
      const idle = performance.now() - this.#lastExchange;
      if (idle < this.#policy.heartbeatMs) {
        return this.#scheduleBeat(this.#policy.heartbeatMs - idle);
      }
      this.#beat = this.#heartbeat().finally(() => this.#beat = undefined);
    }, delay);
  }

  /**
   * Asks where the backup stands (REQ_METADATA) on an idle connection. A connection found dead
   * is dropped; the next write reconnects and resends, as after any lost connection.
   */
  async #heartbeat(): Promise<void> {
    const conn = this.#conn;
    if (!conn || this.#writing) return;
    try {
      await this.#askMetadata(conn);
    } catch (error) {
      if (this.#conn !== conn) return;
      conn.close();
      this.#conn = undefined;
      this.#status.state = "reconnecting";
      this.#log(
        "unusual",
        `heartbeat to ${this.destination}: ${(error as Error).message}; the next change ` +
          `reconnects`,
      );
      return;
    }
    this.#lastExchange = performance.now();
    this.#scheduleBeat();
  }

  /** The server's record count, asked on `conn` (REQ_METADATA). */
  async #askCount(conn: WireConnection): Promise<number> {
    if (this.#credential) return (await this.#askMetadata(conn, "REQ_METADATA")).records;
    return (await this.#askMetadataV1(conn)).versionCount;
  }

  /** REQ_METADATA → METADATA on `conn` in wire v1; a NACK or another answer refused. */
  async #askMetadataV1(conn: WireConnection): Promise<Metadata> {
    const reply = await conn.request(encodePacket(PacketType.ReqMetadata));
    if (reply.type === PacketType.Nack) {
      throw new RemoteBackupError(
        `the server at ${this.destination} refused wire v1 (NACK): it serves nodes that ` +
          `prove their key: put the node's backup.credential (from "server add-node") ` +
          `beside backup.lock, or start the server with --allow-v1`,
      );
    }
    if (reply.type !== PacketType.Metadata) {
      throw new RemoteBackupError(
        `the server answered METADATA's request with ${packetName(reply.type)}: it is not a ` +
          `backup server`,
      );
    }
    return decodeMetadata(reply);
  }

  /** REQ_METADATA → METADATA on `conn`: a heartbeat, unless `what` says otherwise. */
  async #askMetadata(conn: WireConnection, what = "the heartbeat"): Promise<V2Metadata> {
    const reply = await conn.request(encodeFrame(V2Type.ReqMetadata));
    if (reply.type === V2Type.Error) throw refusal(reply, what);
    return decodeMetadataV2(reply);
  }

  /**
   * Whether the server refused the write as held by another connection of the node that
   * heartbeats (ERROR `BUSY`: the node's own, left by a host that went down, which the server
   * hands over once silent), and the policy's wait for that since `since` is not over.
   */
  #heldByAnother(step: WriteStep, reply: Packet, since: number, first: boolean): boolean {
    if (!this.#credential || reply.type !== V2Type.Error) return false;
    const { code, message } = decodeError(reply);
    if (code !== ErrorCode.Busy || this.#now() - since >= this.#policy.takeoverWaitMs) {
      return false;
    }
    if (first) {
      this.#log(
        "unusual",
        `${step.what}: ${message.replace(/: stop the other node.*/, "")}: waiting up to ` +
          `${this.#policy.takeoverWaitMs / 1000} s for the server to hand it over (a ` +
          `connection of this node left open when its host or network went down)`,
      );
    }
    return true;
  }

  /** After a reconnect: has the server got the write already, or does it lack it? */
  #afterReconnect(step: WriteStep): "done" | "resend" {
    const { version, versionCount } = this.#metadata;
    const unclear = step.countBefore === undefined;
    if (version === step.after && (unclear || versionCount > step.countBefore!)) {
      this.#log("info", `the server got ${step.what} before the connection was lost`);
      return "done";
    }
    if (version === step.before && (unclear || versionCount === step.countBefore)) {
      this.#log("info", `the server lacks ${step.what}: sending it again`);
      return "resend";
    }
    throw new RemoteBackupError(
      `after reconnecting, the server's backup is at version ${version}, neither ` +
        `${step.before} (without ${step.what}) nor ${step.after} (with it): another writer or ` +
        `another copy of the backup is behind ${this.destination}; stop the node and check ` +
        `the server with "${cliCommand("status", shellQuote(this.url))}"`,
    );
  }

  #answer(step: WriteStep, reply: Packet): void {
    if (this.#credential && reply.type === V2Type.Error) {
      throw new RemoteBackupError(refusal(reply, step.what).message);
    }
    const v2Ack = this.#credential && reply.type === V2Type.Ack;
    if (v2Ack || (!this.#credential && reply.type === PacketType.Ack)) {
      const acked = v2Ack ? decodeVersionFrame(reply, V2Type.Ack) : decodeVersion(reply);
      if (acked === step.after) return;
      throw new RemoteBackupError(
        `the server acknowledged ${step.what} with version ${acked}, not ${step.after}: it ` +
          `does not hold what was sent; stop the node and check the server's log`,
      );
    }
    if (reply.type === PacketType.Nack) {
      throw new RemoteBackupError(
        `the server refused ${step.what} (NACK; its backup is at version ` +
          `${decodeVersion(reply)}): another client may be writing to it, or it cannot store ` +
          `the change (disk full, or its --quota-bytes reached?): see the server's log`,
      );
    }
    throw new RemoteBackupError(
      `the server answered ${step.what} with ${packetName(reply.type)}: it is not a backup ` +
        `server, or a broken one`,
    );
  }

  async #reconnect(): Promise<void> {
    this.#conn?.close();
    this.#conn = undefined;
    this.#status.state = "connecting";
    const conn = await WireConnection.open(this.target, this.#policy.timeoutMs, this.#credential);
    if (this.#closed) {
      conn.close();
      throw new RemoteBackupError(`closed while connecting to ${this.destination}`);
    }
    if (conn.welcome) {
      const { version, prevVersion, records } = conn.welcome;
      this.#metadata = { protocol: 2, version, prevVersion, versionCount: records };
      this.#conn = conn;
      this.#place = undefined;
      // An encrypted backup's key is checked against the server's at each connect.
      if (this.#key) this.#place = await this.#askPlace();
      // A first heartbeat at once: the server then knows this connection heartbeats, and may
      // give its writer's place to the node's next connection should it fall silent (its host
      // gone), however busy it was until then.
      if (this.#policy.heartbeatMs > 0) await this.#askMetadata(conn);
      this.#status.state = "connected";
      this.#lastExchange = performance.now();
      this.#scheduleBeat();
      return;
    }
    try {
      const metadata = await this.#askMetadataV1(conn);
      if (metadata.protocol !== 1) {
        throw new RemoteBackupError(
          `the server speaks backup protocol ${metadata.protocol}; this plugin speaks 1: ` +
            `upgrade this plugin or run a server of protocol 1`,
        );
      }
      this.#metadata = metadata;
    } catch (error) {
      conn.close();
      throw error;
    }
    this.#conn = conn;
    this.#status.state = "connected";
  }

  /**
   * Runs `attempt`; when the connection is lost, reconnects after a pause growing by the
   * backoff, up to the policy's retries, and runs it again with `reconnected` set. Each wait
   * ends once the plugin stops.
   */
  async #retrying(what: string, attempt: (reconnected: boolean) => Promise<void>): Promise<void> {
    const { retries, backoff } = this.#policy;
    let delay = this.#policy.retryDelayMs;
    const started = this.#now();
    for (let retry = 0;; retry++) {
      try {
        const reconnected = retry > 0 || !this.#conn;
        if (reconnected) await unlessStopping(this.#reconnect(), this.#signal);
        await unlessStopping(attempt(reconnected), this.#signal);
        return;
      } catch (error) {
        if (error instanceof ServerRefusedError) throw new RemoteBackupError(error.message);
        if (!(error instanceof ConnectionLostError)) throw error;
        this.#conn?.close();
        this.#conn = undefined;
        this.#status.state = "reconnecting";
        if (retry === retries) {
          const seconds = Math.round((this.#now() - started) / 100) / 10;
          const message = retries === 0
            ? `${error.message}: check that the server runs and that this machine reaches it`
            : `${what} to ${this.destination} failed, and ${retries} reconnects over ` +
              `${seconds} s did not help (${error.message}): check the server and the ` +
              `network, then start the node again`;
          this.#log("broken", `giving up: ${message}`);
          throw new GaveUpError(message);
        }
        this.#status.reconnects++;
        this.#log(
          "unusual",
          `${what} to ${this.destination}: ${error.message}; reconnect ${retry + 1} of ` +
            `${retries} in ${delay / 1000} s`,
        );
        await unlessStopping(this.#sleep(delay), this.#signal);
        delay *= backoff;
      }
    }
  }

  /** Closes the connection; the status says `disconnected`, unless it had `failed`. */
  close(): void {
    this.#closed = true;
    this.#signal?.removeEventListener("abort", this.#onStop);
    clearTimeout(this.#beatTimer);
    this.#beatTimer = undefined;
    this.#conn?.close();
    this.#conn = undefined;
    if (this.#status.state !== "failed") this.#status.state = "disconnected";
  }
}
