/**
 * One wire v2 connection (docs/PROTOCOL.md): the node proves its key in the handshake, then
 * reaches its own backup only. Every refusal is an ERROR saying why; a packet that fails its
 * checksum or does not parse ends the connection after one.
 *
 * @module
 */
import type { ServerConn } from "./tls_listener.ts";
import { closeQuietly, lostConnection, writeFully } from "../wire/conn_io.ts";
import { removeIfExists } from "../fs/exists.ts";
import { sameBytes } from "../crypto/data_key.ts";
import { isSegmentName } from "../format/layout.ts";
import { receiveFiles } from "../wire/receive_files.ts";
import { sendData } from "../wire/send_data.ts";
import { formatHostPort } from "../backends/url.ts";
import { WireError } from "../wire/packets.ts";
import {
  OversizedPacketError,
  type PacketReader,
  StreamEndedError,
} from "../wire/packet_reader.ts";
import {
  changeVersionV2,
  decodeChangeV2,
  decodeHello,
  decodeSealedBase,
  decodeSealedChange,
  decodeSealedInit,
  decodeSealedInitFile,
  decodeSealedKeyIf,
  decodeSealedUpgrade,
  decodeSnapshotFile,
  decodeSnapshotV2,
  decodeVersionFrame,
  encodeChallenge,
  encodeError,
  encodeFile,
  encodeJson,
  encodeMetadataV2,
  encodePlace,
  encodeVersionFrame,
  encodeWelcome,
  ErrorCode,
  MAC_BYTES,
  packetOf,
  PROTOCOL_VERSION,
  type SealedUpgrade,
  V2_FRAMING,
  type V2Metadata,
  v2Name,
  V2Type,
} from "../wire/packets_v2.ts";
import { checkProof, nonce, prove } from "../wire/handshake.ts";
import type { Packet } from "../wire/packets.ts";
import { compactLogged, type LogLevel, type Writer } from "./session.ts";
import { mostChangeBytes, RefusedError, type ServerStorage, unmadeBackup } from "./storage.ts";
import { readReport } from "../backup/verify.ts";
import { inflateUpload } from "./snapshot_upload.ts";
import { InflateError, MAX_DATABASE_BYTES } from "../wire/inflate.ts";
import { type NodeRegistry, passingKeyError } from "./nodes.ts";
import type { ServerLimits } from "./server.ts";
import type { InflateBudget } from "./inflate_budget.ts";
import { inflateChangeBody, OVER_QUOTA } from "./change_body.ts";
import { peerGroup } from "./peer_group.ts";
import type { FailureKind } from "./log_limit.ts";

/** What a v2 session needs from its server. */
export interface V2Host {
  log(level: LogLevel, message: string): void;
  /** Logs a per-connection failure line, bounded by kind (log_limit.ts). */
  logFailure(kind: FailureKind, level: LogLevel, message: string): void;
  claimWriter(session: Writer, storage: ServerStorage): Writer | undefined;
  /** Node `node`'s backup; one not made yet is made to `create` it, else `undefined`. */
  storageFor(node: string, create?: true): ServerStorage;
  storageFor(node: string, create: boolean): ServerStorage | undefined;
  enter(node: string): boolean;
  leave(node: string): void;
  /** Notes an acknowledged write of `node` (for the metrics). */
  wrote(node: string): void;
  authBlocked(host: string): boolean;
  authFailed(host: string): void;
  readonly nodes: NodeRegistry | undefined;
  readonly limits: ServerLimits;
  readonly maxPayloadBytes: number;
  /** The most a CHANGE's statements may inflate to. */
  readonly maxChangeBytes: number;
  /** CHANGE bodies held inflated, all connections together. */
  readonly inflating: InflateBudget;
}

/** The connection ends after an ERROR of this kind has been sent. */
class Closing extends Error {}

/** Why a write was refused, as ERROR says it. */
interface Refusal {
  code: ErrorCode;
  message: string;
}

/** What storage threw: a refusal of the write, or the storage failing (disk full, I/O). */
function storingRefusal(error: unknown): Refusal {
  const message = (error as Error).message;
  return error instanceof RefusedError
    ? { code: ErrorCode.Refused, message }
    : { code: ErrorCode.Storage, message: `the server cannot store it: ${message}` };
}

/**
 * The requests that may start the backup: the first of them makes a node's backup. With the
 * ones #answerUnmade answers (reads, and writes that need a backup to change), they are every
 * request #handle serves: a new one goes in one of them.
 */
const MAKES: ReadonlySet<number> = new Set([
  V2Type.Change,
  V2Type.SealedChange,
  V2Type.SealedInit,
  V2Type.SnapshotFile,
  V2Type.SealedInitFile,
  V2Type.SealedBase,
  V2Type.SealedUpgrade,
  // init --encrypt's first question: where its sealed base goes, in a backup of its own.
  V2Type.ReqPlace,
  V2Type.Snapshot,
]);

/**
 * Where a backup stands, as WELCOME and METADATA say; one not made yet at version 0. One that
 * cannot rewind (a base with no change after it) gives its own version as the one before: v1's
 * 0 there (the Python server's, kept in v1) reads as a change that can be dropped back to 0.
 */
function standing(storage: ServerStorage | undefined): V2Metadata {
  if (!storage) return { version: 0, prevVersion: 0, records: 0 };
  const { version, versionCount } = storage.metadata();
  const prevVersion = storage.state().rewindVersion ?? version;
  return { version, prevVersion, records: versionCount };
}

export class V2Session {
  #node: string | undefined;
  /** The key the node proved, to tell when the operator removes or replaces it. */
  #key: Uint8Array | undefined;
  #entered = false;
  #handling = false;
  #heard = performance.now();
  /** Whether it asked REQ_METADATA: a plugin that heartbeats; an older one never asks. */
  #beats = false;
  #authenticated = false;
  /** The node's backup; `undefined` until one is made, by the node's first write. */
  #storage: ServerStorage | undefined;
  /** Aborted as the connection closes: a change not stored by then never is. */
  #closing = new AbortController();
  /** The read a long request started to see the client close meanwhile (#answer). */
  #peeking: Promise<unknown> | undefined;

  constructor(
    readonly id: number,
    readonly conn: ServerConn,
    readonly host: V2Host,
    readonly reader: PacketReader,
    /** When the handshake must be over (`performance.now()`): its time counts from accept. */
    readonly handshakeBy: number,
  ) {}

  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  /** Whether the node has proved its key. */
  get authenticated(): boolean {
    return this.#authenticated;
  }

  /**
   * Since the last request was answered; 0 while one is (an upload may take long), and
   * `undefined` for a client that never heartbeat (a plugin from before heartbeats, idle yet
   * alive).
   */
  silentMs(): number | undefined {
    if (!this.#beats) return undefined;
    return this.#handling ? 0 : performance.now() - this.#heard;
  }

  /** The node it authenticated as; `undefined` before. */
  get node(): string | undefined {
    return this.authenticated ? this.#node : undefined;
  }

  /** Whether `key` is the one this session's node proved it holds. */
  provedKey(key: Uint8Array): boolean {
    return this.#key !== undefined && sameBytes(this.#key, key);
  }

  get peerHost(): string {
    return this.conn.remoteAddr.hostname;
  }

  get name(): string {
    const addr = this.conn.remoteAddr;
    const who = `connection ${this.id} from ${formatHostPort(addr.hostname, addr.port)}`;
    return this.#node ? `${who} (node ${this.#node})` : who;
  }

  async run(): Promise<void> {
    try {
      await this.#handshake();
      // Proved: the node may now send what its requests carry (the server read HELLO and
      // AUTH only until now).
      this.reader.framing = V2_FRAMING;
      for (;;) {
        // A request's own watch for the client's close (#answer) reads on: waited for first.
        await this.#peeking;
        this.#peeking = undefined;
        const packet = await this.reader.next();
        if (!packet) {
          this.host.log("info", `${this.name}: closed by the client`);
          return;
        }
        this.#handling = true;
        try {
          await this.#handle(packet);
        } finally {
          this.#handling = false;
          this.#heard = performance.now();
        }
      }
    } catch (error) {
      if (this.#closing.signal.aborted || error instanceof Closing) return;
      if (error instanceof WireError && !(error instanceof StreamEndedError)) {
        const line = `${this.name}: protocol error: ${error.message}`;
        // A node that proved its key is no flood's: its error is said, not lost among theirs.
        if (this.authenticated) this.host.log("warning", line);
        else this.host.logFailure("protocol", "warning", line);
        // Over the operator's limit, not the protocol's: say which setting it is.
        const setting = error instanceof OversizedPacketError &&
            error.limit === this.host.maxPayloadBytes
          ? " (this server's --max-packet-bytes)"
          : "";
        await this.#error(ErrorCode.BadPacket, `${error.message}${setting}: closing the connection`)
          .catch(() => {});
        return;
      }
      const lost = `${this.name}: lost: ${(error as Error).message}`;
      if (this.authenticated) this.host.log("info", lost);
      else this.host.logFailure("connection", "info", lost);
    } finally {
      if (this.#entered) this.host.leave(this.#node!);
      this.close();
    }
  }

  /**
   * The next packet within what is left of the handshake's time; the connection closes when
   * it runs out.
   */
  async #handshakePacket(): Promise<Packet> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Closing());
        this.host.logFailure("timeout", "warning", `${this.name}: refused: no handshake in time`);
        this.close();
      }, Math.max(0, this.handshakeBy - performance.now()));
    });
    try {
      const packet = await Promise.race([this.reader.next(), timeout]);
      if (!packet) throw new Closing();
      return packet;
    } finally {
      clearTimeout(timer);
    }
  }

  /** HELLO, CHALLENGE, AUTH, WELCOME; throws {@linkcode Closing} after any refusal. */
  async #handshake(): Promise<void> {
    const { host } = this;
    const hello = decodeHello(await this.#handshakePacket());
    if (hello.protocol !== PROTOCOL_VERSION) {
      host.logFailure(
        "wire",
        "warning",
        `${this.name}: refused: it speaks backup protocol ${hello.protocol}, and this server ` +
          `${PROTOCOL_VERSION}`,
      );
      await this.#refuse(
        ErrorCode.Version,
        `this server speaks backup protocol ${PROTOCOL_VERSION}, not ${hello.protocol}: ` +
          `upgrade the older side`,
      );
    }
    const serverNonce = nonce();
    await this.#send(encodeChallenge(serverNonce));
    const auth = packetOf(await this.#handshakePacket(), V2Type.Auth);
    const proof = auth.bytes(MAC_BYTES);
    auth.end();
    const input = { node: hello.node, clientNonce: hello.nonce, serverNonce };
    let key: Uint8Array | undefined;
    try {
      key = host.nodes?.key(hello.node);
    } catch (error) {
      if (passingKeyError(error)) {
        // Not the key file's fault: closed unanswered, the node reconnects and tries again.
        const why = (error as Error).message.replace(/: it must .*/, "");
        host.logFailure("key", "error", `${this.name}: ${why}`);
        this.close();
        throw new Closing("the key did not read for now");
      }
      host.logFailure("key", "error", `${this.name}: refused: ${(error as Error).message}`);
      await this.#refuse(
        ErrorCode.Storage,
        `the server cannot use node ${JSON.stringify(hello.node)}'s key: its operator must ` +
          `fix that (see the server's log)`,
      );
    }
    if (!key || !(await checkProof(key, "client", input, proof))) {
      // A peer whose group failed too often is turned away unlogged, but only once it failed
      // again: one that proves its key always goes in, or a neighbour in a shared /64 (or
      // behind one IPv4 address) that keeps failing would keep every node there out.
      if (host.authBlocked(this.peerHost)) {
        await this.#refuse(
          ErrorCode.Limit,
          `too many failed authentications from ${peerGroup(this.peerHost)}: wait a minute`,
        );
      }
      host.authFailed(this.peerHost);
      host.logFailure(
        "login",
        "warning",
        `${this.name}: refused: no valid proof of the key of node ${JSON.stringify(hello.node)}`,
      );
      await this.#refuse(
        ErrorCode.Unauthorized,
        `the server does not accept this credential for node ${JSON.stringify(hello.node)}: ` +
          `check backup.credential against "server list-nodes" on the server`,
      );
    }
    this.#node = hello.node;
    this.#key = key;
    if (!host.enter(hello.node)) {
      const held = `node ${hello.node} holds ${host.limits.connectionsPerNode} connections already`;
      host.logFailure("nodeLimit", "warning", `${this.name}: refused: ${held} (--max-connections)`);
      this.#node = undefined;
      await this.#refuse(ErrorCode.Limit, held);
    }
    this.#entered = true;
    const storage = await this.#openBackup(false);
    this.#storage = storage;
    this.#authenticated = true;
    await this.#send(encodeWelcome(await prove(key!, "server", input), standing(storage)));
    host.log("info", `${this.name}: authenticated`);
  }

  async #refuse(code: ErrorCode, message: string): Promise<never> {
    await this.#error(code, message).catch(() => {});
    throw new Closing();
  }

  async #handle(packet: Packet): Promise<void> {
    // Made by another connection of the node since, or still not there: a read of a backup
    // not made yet is answered as of an empty one, and makes none; a write makes it.
    this.#storage ??= await this.#openBackup(false);
    if (!this.#storage && !MAKES.has(packet.type)) return await this.#answerUnmade(packet);
    const storage = this.#storage ??= (await this.#openBackup(true))!;
    // A write from a connection closed meanwhile is dropped, never stored (see #change).
    const closed = this.#closing.signal;
    const max = this.host.maxPayloadBytes;
    switch (packet.type) {
      case V2Type.Change:
        return await this.#change(storage, packet);
      case V2Type.SealedChange: {
        const change = decodeSealedChange(packet);
        const bytes = change.record.length + (change.seal?.length ?? 0);
        await this.#write(undefined, bytes, () => storage.appendSealed(change, closed));
        return;
      }
      case V2Type.SealedInit: {
        const { wrappedKey, base } = decodeSealedInit(packet);
        this.host.log("info", `${this.name}: SEALED_INIT (a base of ${base.length} bytes)`);
        await this.#write(
          undefined,
          base.length,
          () => storage.initSealed(wrappedKey, base, closed),
        );
        return;
      }
      case V2Type.SnapshotFile: {
        const { version, size } = decodeSnapshotFile(packet);
        this.host.log("info", `${this.name}: SNAPSHOT_FILE ${version} (${size} bytes deflated)`);
        return await this.#snapshotFile(storage, version, size);
      }
      case V2Type.SealedInitFile: {
        const { wrappedKey, size } = decodeSealedInitFile(packet);
        this.host.log("info", `${this.name}: SEALED_INIT_FILE (a base of ${size} bytes)`);
        return await this.#sealedInitFile(storage, wrappedKey, size);
      }
      case V2Type.SealedBase: {
        const size = decodeSealedBase(packet);
        this.host.log("info", `${this.name}: SEALED_BASE (${size} bytes)`);
        const upload = storage.uploadPath(this.id);
        try {
          await this.#receiveFile(upload, size, true);
          return await this.#answer(
            "SEALED_BASE",
            V2Type.CompactRes,
            () => storage.swapBase(upload, closed),
          );
        } finally {
          removeIfExists(upload);
        }
      }
      case V2Type.SealedKey:
      case V2Type.SealedKeyIf: {
        const { read, wrappedKey } = packet.type === V2Type.SealedKeyIf
          ? decodeSealedKeyIf(packet)
          : { read: undefined, wrappedKey: packetOf(packet, V2Type.SealedKey).rest() };
        this.host.log("info", `${this.name}: ${v2Name(packet.type)} (rekey)`);
        // No record changes: taken beside the node's writer, as a file backup's rekey is.
        let version: number;
        try {
          version = storage.replaceWrappedKey(wrappedKey, read);
        } catch (error) {
          const refused = storingRefusal(error);
          const said = (error as Error).message;
          this.host.log("error", `${this.name}: refused a rewrapped key: ${said}`);
          return await this.#error(refused.code, refused.message);
        }
        return await this.#send(encodeVersionFrame(V2Type.Ack, version));
      }
      case V2Type.SealedUpgrade:
        return await this.#upgrade(decodeSealedUpgrade(packet));
      case V2Type.ReqPlace:
        packetOf(packet, V2Type.ReqPlace).end();
        return await this.#send(encodePlace(storage.place()));
      case V2Type.Snapshot: {
        const { version, database } = decodeSnapshotV2(packet, max);
        this.host.log("info", `${this.name}: SNAPSHOT ${version} (${database.length} bytes)`);
        await this.#write(
          version,
          database.length,
          () => storage.storeSnapshot(version, database, closed),
        );
        return;
      }
      case V2Type.Rewind: {
        const to = decodeVersionFrame(packet, V2Type.Rewind);
        this.host.log("info", `${this.name}: REWIND to ${to}`);
        await this.#write(to, 0, () => storage.rewind(to));
        return;
      }
      case V2Type.ReqMetadata: {
        packetOf(packet, V2Type.ReqMetadata).end();
        this.#beats = true;
        return await this.#send(encodeMetadataV2(standing(storage)));
      }
      case V2Type.Restore:
        packetOf(packet, V2Type.Restore).end();
        return await this.#restore(storage);
      case V2Type.Compact:
        packetOf(packet, V2Type.Compact).end();
        return await this.#answer(
          "COMPACT",
          V2Type.CompactRes,
          () => compactLogged(storage, this.name, (level, m) => this.host.log(level, m)),
        );
      case V2Type.Status:
        packetOf(packet, V2Type.Status).end();
        return await this.#answer("STATUS", V2Type.StatusRes, async () => ({
          node: this.#node,
          ...(await storage.describe()),
          url: undefined,
          quota_bytes: this.host.limits.quotaBytes ?? null,
        }));
      case V2Type.Verify:
        packetOf(packet, V2Type.Verify).end();
        return await this.#answer("VERIFY", V2Type.VerifyRes, async () => ({
          ok: true,
          ...(await storage.verify(this.#closing.signal)),
        }));
    }
    throw new WireError(`unexpected ${v2Name(packet.type)} from a client`);
  }

  /**
   * Answers `packet`, of a backup not made yet: a read as of an empty backup, a request that
   * changes what the backup holds (restore, compact, rewind, rekey) refused, making none.
   */
  async #answerUnmade(packet: Packet): Promise<void> {
    const nothingTo = (what: string) =>
      this.#error(
        ErrorCode.Refused,
        `node ${this.#node} has no backup on this server yet: nothing to ${what}; init on ` +
          `the node makes one`,
      );
    switch (packet.type) {
      case V2Type.ReqMetadata:
        packetOf(packet, V2Type.ReqMetadata).end();
        this.#beats = true;
        await this.#send(encodeMetadataV2(standing(undefined)));
        return;
      case V2Type.Status:
        packetOf(packet, V2Type.Status).end();
        await this.#send(encodeJson(V2Type.StatusRes, {
          node: this.#node,
          ...unmadeBackup(),
          quota_bytes: this.host.limits.quotaBytes ?? null,
        }));
        return;
      case V2Type.Verify:
        packetOf(packet, V2Type.Verify).end();
        await this.#send(encodeJson(V2Type.VerifyRes, { ok: true, ...readReport(unmadeBackup()) }));
        return;
      case V2Type.Restore:
        packetOf(packet, V2Type.Restore).end();
        return await nothingTo("restore");
      case V2Type.Compact:
        packetOf(packet, V2Type.Compact).end();
        return await nothingTo("compact");
      case V2Type.Rewind:
        decodeVersionFrame(packet, V2Type.Rewind);
        return await nothingTo("rewind");
      case V2Type.SealedKey:
      case V2Type.SealedKeyIf:
        return await nothingTo("rekey");
    }
    throw new WireError(`unexpected ${v2Name(packet.type)} from a client`);
  }

  /**
   * The node's backup, made empty to `create` it (for its first write), else `undefined` while
   * there is none; one that cannot be opened or made is refused, and the connection closes.
   */
  async #openBackup(create: boolean): Promise<ServerStorage | undefined> {
    try {
      return this.host.storageFor(this.#node!, create);
    } catch (error) {
      this.host.log("error", `${this.name}: cannot open its backup: ${(error as Error).message}`);
      return await this.#refuse(
        ErrorCode.Storage,
        `the server cannot open node ${this.#node}'s backup: see the server's log`,
      );
    }
  }

  /**
   * A CHANGE: refused before it is inflated when another connection writes the backup or it
   * is at its quota; inflated within what a record holds, what the quota leaves, and the
   * server's budget of bytes inflated at once (a connection past it waits); then stored.
   * Dropped, never stored, if the connection closes first (taken over, its node removed, the
   * server stopping): the backup may have another writer by then.
   */
  async #change(storage: ServerStorage, packet: Packet): Promise<void> {
    const { host } = this;
    const version = changeVersionV2(packet);
    const early = this.#refusal(mostChangeBytes(0));
    if (early) return await this.#refused(`version ${version}`, early);
    const closed = this.#closing.signal;
    const held = await inflateChangeBody(
      host,
      storage.state().bytes,
      (max) => decodeChangeV2(packet, max),
      closed,
    );
    if (held === OVER_QUOTA) {
      const message = this.#overQuota(host.limits.quotaBytes!);
      return await this.#refused(`version ${version}`, { code: ErrorCode.Quota, message });
    }
    try {
      // Given back once stored or refused, before the answer: a peer that does not read its
      // ACK must not hold the budget every other connection's changes inflate within.
      let change: ReturnType<typeof decodeChangeV2> | undefined = held.value;
      const { version: at, bytes } = change;
      await this.#write(at, mostChangeBytes(bytes), () => storage.append(change!, closed), () => {
        change = undefined;
        held.release();
      });
    } finally {
      held.release();
    }
  }

  /** Answers a request with JSON, or an ERROR saying why it failed. */
  async #answer(
    what: string,
    type: V2Type.CompactRes | V2Type.StatusRes | V2Type.VerifyRes,
    work: () => unknown,
  ): Promise<void> {
    let result: unknown;
    // A client that closes meanwhile (a verify or backup-compact given up) is let go at once:
    // it would hold one of its node's connections, and a VERIFY its worker and scratch, until
    // the work ended. Its VERIFY is stopped; a compaction goes on.
    const { signal } = this.#closing;
    const working = Promise.resolve().then(work);
    working.catch((error) => {
      if (!signal.aborted || error === signal.reason) return;
      this.host.log("warning", `${this.name}: ${what} failed after its client left: ${error}`);
    });
    let answered = false;
    const next = this.#peeking = this.reader.peek();
    const gone = new Promise<never>((_, reject) => {
      const left = () => {
        if (answered) return;
        if (!signal.aborted) {
          this.host.log("info", `${this.name}: closed by the client during its ${what}`);
          this.close();
        }
        reject(signal.reason);
      };
      next.then((byte) => byte === null && left(), left);
    });
    try {
      result = await Promise.race([working, gone]);
    } catch (error) {
      if (error === this.#closing.signal.reason) throw error;
      const message = `${what} failed: ${(error as Error).message}`;
      this.host.log("warning", `${this.name}: ${message}`);
      await this.#error(ErrorCode.Failed, message);
      return;
    } finally {
      answered = true;
    }
    await this.#send(encodeJson(type, result));
  }

  /**
   * Runs a write as the backup's one writer, within the node's quota, and answers ACK with
   * the version after it, or ERROR with the version as it stands; `settled` runs once it is
   * done or refused, before the answer is sent.
   */
  async #write(
    version: number | undefined,
    bytes: number,
    write: () => unknown,
    settled?: () => void,
  ): Promise<void> {
    const storage = this.#storage!;
    let refused = this.#refusal(bytes);
    let after: number | undefined;
    if (!refused) {
      try {
        const result = await write();
        after = typeof result === "number" ? result : storage.state().version;
      } catch (error) {
        // Dropped as its connection closed: there is no one to answer.
        if (error instanceof WireError || error === this.#closing.signal.reason) throw error;
        refused = storingRefusal(error);
      }
    }
    settled?.();
    // Stored: a client gone meanwhile (a long init) is a lost connection, not a refusal.
    if (after !== undefined) {
      this.host.wrote(this.#node!);
      this.host.log("debug", `${this.name}: stored version ${after}`);
      return await this.#send(encodeVersionFrame(V2Type.Ack, after));
    }
    await this.#refused(version === undefined ? "a sealed write" : `version ${version}`, refused!);
  }

  /** Refuses a write (`what`), saying why in the log and in ERROR; the connection goes on. */
  async #refused(what: string, refused: Refusal): Promise<void> {
    this.host.log("error", `${this.name}: refused ${what}: ${refused.message}`);
    await this.#error(refused.code, refused.message);
  }

  /**
   * Why this connection may not write `bytes` more, if it may not: another writer of the
   * backup (else this one becomes its writer), or the node's quota.
   */
  #refusal(bytes: number): Refusal | undefined {
    const storage = this.#storage!;
    const other = this.host.claimWriter(this, storage);
    if (other) {
      return {
        // A writer that heartbeats is taken over once silent: the client may wait for that.
        code: other.silentMs?.() !== undefined ? ErrorCode.Busy : ErrorCode.Refused,
        message: `${other.name} is writing to this backup, and a backup has one writer: ` +
          `stop the other node that uses node ${this.#node}'s credential (each node needs ` +
          `its own: "server add-node"); if it is this node's own connection, left open when ` +
          `its host or network went down, it is taken over once silent for ` +
          `${Math.round(this.host.limits.writerSilenceMs / 1000)} s: start the node again then`,
      };
    }
    const quota = this.host.limits.quotaBytes;
    // A write that adds nothing (a rewind) goes in over the quota too: it may free room.
    // Uploads in flight do not count here (#receiveFile counts them against each other): a
    // compaction's base on another connection would otherwise stop the node it is to relieve.
    if (quota !== undefined && bytes > 0 && storage.state().bytes + bytes > quota) {
      return { code: ErrorCode.Quota, message: this.#overQuota(quota) };
    }
    return undefined;
  }

  #overQuota(quota: number): string {
    return `node ${this.#node}'s backup would pass its quota of ${quota} bytes: ask the ` +
      `server's operator for more, or compact it (lightning-cli backup-compact)`;
  }

  /**
   * SNAPSHOT_FILE: refused before its bytes are taken (another writer, the quota, a backup
   * that is not empty), the connection then closing; else its DATA into a temporary file,
   * inflated into the database within what the quota leaves, the base made of that, and ACK.
   */
  async #snapshotFile(storage: ServerStorage, version: number, size: number): Promise<void> {
    const what = `SNAPSHOT_FILE ${version}`;
    await this.#refuseBefore(what, size, () => storage.refuseSnapshot(version));
    const quota = this.host.limits.quotaBytes;
    const room = quota === undefined ? MAX_DATABASE_BYTES : quota - storage.usedBytes();
    const [upload, database] = [storage.uploadPath(this.id), storage.uploadPath(this.id, "db")];
    try {
      let bytes: number;
      try {
        await this.#receiveFile(upload, size);
        bytes = await inflateUpload(upload, size, database, Math.min(room, MAX_DATABASE_BYTES));
      } catch (error) {
        if (
          error instanceof InflateError && error.overLimit && quota !== undefined &&
          room < MAX_DATABASE_BYTES
        ) {
          return await this.#refuseLogged(what, ErrorCode.Quota, this.#overQuota(quota));
        }
        if (error instanceof InflateError) {
          throw new WireError(`${what} does not decompress: ${error.message}`);
        }
        return await this.#uploadFailed(what, error);
      }
      // The deflated copy goes before the base is made: the disk holds two copies at most.
      removeIfExists(upload);
      await this.#write(
        version,
        bytes,
        () => storage.storeSnapshotFile(version, database, this.#closing.signal),
      );
    } finally {
      removeIfExists(upload);
      removeIfExists(database);
    }
  }

  /**
   * SEALED_INIT_FILE: SEALED_INIT with its base in DATA, refused before its bytes are taken as
   * SNAPSHOT_FILE is; the base into a temporary file, then checked and moved into place.
   */
  async #sealedInitFile(
    storage: ServerStorage,
    wrappedKey: Uint8Array,
    size: number,
  ): Promise<void> {
    const what = "SEALED_INIT_FILE";
    await this.#refuseBefore(what, size, () => storage.refuseSealedInit());
    const upload = storage.uploadPath(this.id);
    try {
      try {
        if (size > 0) await this.#receiveFile(upload, size);
      } catch (error) {
        return await this.#uploadFailed(what, error);
      }
      await this.#write(
        undefined,
        size,
        () =>
          storage.initSealedFile(wrappedKey, size > 0 ? upload : undefined, this.#closing.signal),
      );
    } finally {
      removeIfExists(upload);
    }
  }

  /**
   * Refuses an upload (`what`, `bytes` of it) before its bytes are taken, when another
   * connection writes the backup, the quota would pass, or `check` throws; the connection
   * then closes, its bytes unread.
   */
  async #refuseBefore(what: string, bytes: number, check: () => void): Promise<void> {
    let refused = this.#refusal(bytes);
    if (!refused) {
      try {
        check();
      } catch (error) {
        refused = storingRefusal(error);
      }
    }
    if (refused) await this.#refuseLogged(what, refused.code, refused.message);
  }

  /** An upload that failed while it was taken: the peer gone, a bad packet, or the disk. */
  async #uploadFailed(what: string, error: unknown): Promise<never> {
    if (error instanceof WireError || error instanceof Closing || lostConnection(error)) {
      throw error;
    }
    // The disk (full, failing), not the peer: say so rather than close unexplained.
    return await this.#refuseLogged(
      what,
      ErrorCode.Storage,
      `the server cannot store it: ${(error as Error).message}`,
    );
  }

  async #refuseLogged(what: string, code: ErrorCode, message: string): Promise<never> {
    this.host.log("error", `${this.name}: refused ${what}: ${message}`);
    return await this.#refuse(code, message);
  }

  /**
   * SEALED_UPGRADE (upgrade --encrypt): with no other writer on the backup and the copy
   * within the node's quota, ACK, then the copy's segments into the staging directory, each
   * synced, until DONE; then the swap, and ACK with the version, or ERROR and the plain
   * backup as it was. The staging directory goes whatever happens.
   */
  async #upgrade(upgrade: SealedUpgrade): Promise<void> {
    const storage = this.#storage!;
    const { version, bytes } = upgrade;
    this.host.log(
      "info",
      `${this.name}: SEALED_UPGRADE (an encrypted copy of ${bytes} bytes at version ${version})`,
    );
    const other = this.host.claimWriter(this, storage);
    const quota = this.host.limits.quotaBytes;
    if (other) {
      return await this.#error(
        ErrorCode.Refused,
        `${other.name} is writing to this backup: stop the node (lightningd) before upgrading ` +
          `its backup`,
      );
    }
    if (quota !== undefined && bytes > quota) {
      this.host.log("error", `${this.name}: refused an encrypted copy past the quota`);
      return await this.#error(
        ErrorCode.Quota,
        `node ${this.#node}'s encrypted backup would take ${bytes} bytes, past its quota of ` +
          `${quota}: ask the server's operator for more, or compact the backup first`,
      );
    }
    try {
      const { staging, owner } = storage.beginUpgrade(version, upgrade.wrappedKey);
      await this.#send(encodeVersionFrame(V2Type.Ack, version));
      await storage.receiving(bytes, () => this.#receiveStaged(staging, bytes));
      const after = await storage.commitUpgrade(owner, version, this.#closing.signal);
      this.host.wrote(this.#node!);
      await this.#send(encodeVersionFrame(V2Type.Ack, after));
    } catch (error) {
      const closed = error === this.#closing.signal.reason;
      if (error instanceof WireError || error instanceof Closing || closed) throw error;
      const { code, message } = storingRefusal(error);
      this.host.log(
        "error",
        `${this.name}: refused an encrypted copy: ${(error as Error).message}`,
      );
      await this.#error(
        code,
        code === ErrorCode.Storage ? `${message}; the plain backup is unchanged` : message,
      );
    } finally {
      storage.abandonUpgrade();
    }
  }

  /**
   * Writes each FILE and its DATA that follow into `staging`, each synced, until DONE; at
   * most `bytes` in all, and only segment names, each once.
   */
  async #receiveStaged(staging: string, bytes: number): Promise<void> {
    let total = 0;
    await receiveFiles({
      next: async () => {
        const packet = await this.reader.next();
        if (!packet) throw new StreamEndedError("the client left its encrypted copy unfinished");
        return packet;
      },
      accept: (name, size) => {
        total += size;
        if (!isSegmentName(name) || total > bytes) {
          throw new WireError(
            `FILE ${JSON.stringify(name)} of ${size} bytes is not a segment, or passes the ` +
              `${bytes} bytes SEALED_UPGRADE announced`,
          );
        }
      },
      misplaced: (what) => new WireError(`${what} in an encrypted copy`),
      sync: true,
    }, staging);
  }

  /**
   * Writes the `size` bytes that follow in DATA packets to `path`, as they come (an upload of
   * any size, never whole in memory); anything else before they are all there ends the
   * connection as a protocol error.
   */
  async #receiveFile(path: string, size: number, replacing = false): Promise<void> {
    const quota = this.host.limits.quotaBytes;
    const storage = this.#storage!;
    // Its other connections' uploads count too: else each could take the quota at once. A
    // compaction's base (`replacing`) takes the place of what it covers, deleted once it is
    // in: counted with the uploads alone, so a backup near its quota can still be compacted
    // (the disk holds the base beside it meanwhile, the quota more at most).
    const held = replacing ? storage.uploadingBytes() : storage.usedBytes();
    if (quota !== undefined && held + size > quota) {
      await this.#refuse(
        ErrorCode.Quota,
        `node ${this.#node}'s backup would pass its quota of ${quota} bytes with an upload of ` +
          `${size} bytes: ask the server's operator for more`,
      );
    }
    await storage.receiving(size, () => this.#receiveInto(path, size));
  }

  /** The DATA of an upload of `size` bytes into `path`. */
  async #receiveInto(path: string, size: number): Promise<void> {
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    try {
      for (let left = size; left > 0;) {
        const packet = await this.reader.next();
        if (!packet) {
          throw new StreamEndedError(`the client left ${left} bytes of an upload unsent`);
        }
        if (packet.type !== V2Type.Data || packet.payload.length > left) {
          throw new WireError(`${v2Name(packet.type)} where ${left} bytes of an upload belong`);
        }
        await writeFully(file, packet.payload);
        left -= packet.payload.length;
      }
    } finally {
      file.close();
    }
  }

  /** Sends the backup's files as they stand, each as FILE then DATA chunks, then DONE. */
  async #restore(storage: ServerStorage): Promise<void> {
    const version = storage.state().version;
    const files = storage.openFiles();
    try {
      for (const { name, file, size } of files) {
        await this.#send(encodeFile(name, size));
        await sendData((frame) => this.#send(frame), file, size, name);
      }
    } finally {
      for (const { file } of files) file.close();
    }
    await this.#send(encodeVersionFrame(V2Type.Done, version));
    this.host.log("info", `${this.name}: RESTORE sent ${files.length} files up to ${version}`);
  }

  #error(code: ErrorCode, message: string): Promise<void> {
    const version = this.#storage?.state().version ?? 0;
    return this.#send(encodeError({ code, version, message }));
  }

  async #send(bytes: Uint8Array): Promise<void> {
    await writeFully(this.conn, bytes);
  }

  close(): void {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    closeQuietly(this.conn);
  }
}
