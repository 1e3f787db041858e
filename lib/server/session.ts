/**
 * One client connection to the server: reads its packets and answers them as the v1 server
 * does, except that an ACK is sent only once the change is on stable storage, and a change
 * that cannot be stored is answered with NACK.
 *
 * @module
 */
import type { ServerConn } from "./tls_listener.ts";
import { closeQuietly, writeFully } from "../wire/conn_io.ts";
import { formatHostPort } from "../backends/url.ts";
import {
  changeVersion,
  decodeChange,
  decodeVersion,
  encodeChange,
  encodeCompactResult,
  encodeMetadata,
  encodePacket,
  encodeVersionPacket,
  FAST_LEVEL,
  type Packet,
  packetName,
  PacketType,
  WireError,
} from "../wire/packets.ts";
import { type PacketReader, StreamEndedError } from "../wire/packet_reader.ts";
import { type SnapshotStream, snapshotStream } from "../wire/snapshot_stream.ts";
import { InflateError, MAX_DATABASE_BYTES } from "../wire/inflate.ts";
import { concat } from "../bytes/concat.ts";
import { removeIfExists } from "../fs/exists.ts";
import { inflateUpload, receiveSnapshot } from "./snapshot_upload.ts";
import { mostChangeBytes, RefusedError, type ServerStorage } from "./storage.ts";
import type { CompactionResult } from "../compact/compact.ts";
import type { InflateBudget } from "./inflate_budget.ts";
import { inflateChangeBody, OVER_QUOTA } from "./change_body.ts";
import type { FailureKind } from "./log_limit.ts";

/** A restore's packets are written in batches of about this many bytes. */
const RESTORE_BATCH_BYTES = 256 * 1024;

/** The levels of the server's log lines, least urgent first. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** A restore's send failed: the client is gone (`cause`), the backup is not at fault. */
class ClientGone extends Error {
  constructor(override readonly cause: unknown) {
    super("the client is gone");
  }
}

/**
 * Compacts `storage` at the request of connection `name` (COMPACT, v1 or v2), logging that it
 * starts and what it did.
 */
export async function compactLogged(
  storage: ServerStorage,
  name: string,
  log: (level: LogLevel, message: string) => void,
): Promise<CompactionResult> {
  log("info", `${name}: COMPACT: compacting the backup beside the writes`);
  const result = await storage.compact();
  log(
    "info",
    `${name}: compacted in ${result.seconds} s: ${result.versions_folded} change(s) folded ` +
      `into base ${result.base_version ?? "(none new)"}, ${result.bytes_freed} bytes freed`,
  );
  return result;
}

/** A connection as the one writer of a backup knows it. */
export interface Writer {
  /** The connection as the log names it. */
  readonly name: string;
  /** Aborted as the connection closes: a closed connection never becomes the writer. */
  readonly closing: AbortSignal;
  /**
   * How long a wire v2 session has been silent, outside a request (its plugin's heartbeats
   * keep it short); `undefined` for one that never heartbeat (REQ_METADATA). A v1 session has
   * no such method. Only a writer that heartbeats is ever taken over.
   */
  silentMs?(): number | undefined;
  /** Closes the connection (a writer taken over). */
  close(): void;
}

/** What a session needs from the server it belongs to. */
export interface SessionHost {
  log(level: LogLevel, message: string): void;
  /**
   * Logs a per-connection line that a flood multiplies, bounded by kind (log_limit.ts): a v1
   * client proves nothing, so anyone who reaches the port makes these.
   */
  logFailure(kind: FailureKind, level: LogLevel, message: string): void;
  /**
   * Makes `session` the one writer of `storage`; returns who else is, if someone is. Throws
   * `session.closing`'s reason once it closed.
   */
  claimWriter(session: Writer, storage: ServerStorage): Writer | undefined;
  maxPayloadBytes: number;
  /** The most a CHANGE's statements may inflate to. */
  maxChangeBytes: number;
  /** CHANGE bodies held inflated, all connections together. */
  inflating: InflateBudget;
  /** The bytes a backup may hold (`--quota-bytes`), v1's as a node's. */
  limits: { quotaBytes: number | undefined };
}

export class Session {
  #reader: PacketReader;
  /** The version this connection was last told, which bounds what a RESTORE sends. */
  #toldVersion: number | undefined;
  /** Aborted as the connection closes: a change not stored by then never is. */
  #closing = new AbortController();
  /** When a packet last came in whole or an answer went out (`performance.now()`). */
  #lastActive = performance.now();
  /** The read a COMPACT started to see the client close meanwhile: the next packet's. */
  #peeking: Promise<number | null> | undefined;

  constructor(
    readonly id: number,
    readonly conn: ServerConn,
    readonly host: SessionHost,
    readonly storage: ServerStorage,
    reader: PacketReader,
  ) {
    this.#reader = reader;
  }

  /** When a packet last came in whole or an answer went out (`performance.now()`). */
  get lastActive(): number {
    return this.#lastActive;
  }

  /** Whether it was closed (by either end). */
  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  get peer(): string {
    const addr = this.conn.remoteAddr;
    return formatHostPort(addr.hostname, addr.port);
  }

  get name(): string {
    return `connection ${this.id} from ${this.peer}`;
  }

  /** Serves the connection until the client or the server closes it. */
  async run(): Promise<void> {
    try {
      for (;;) {
        const type = await (this.#peeking ?? this.#reader.peek());
        this.#peeking = undefined;
        if (type === PacketType.Snapshot) {
          if (!(await this.#snapshot())) return;
          continue;
        }
        const packet = await this.#reader.next();
        if (!packet) {
          this.host.logFailure("connection", "info", `${this.name}: closed by the client`);
          return;
        }
        this.#lastActive = performance.now();
        if (!(await this.#handle(packet.type, packet.payload))) return;
      }
    } catch (error) {
      if (this.closed) return;
      const broken = error instanceof WireError && !(error instanceof StreamEndedError);
      const why = broken
        ? `protocol error: ${(error as Error).message}`
        : `lost: ${(error as Error).message}`;
      this.host.logFailure(
        broken ? "protocol" : "connection",
        broken ? "warning" : "info",
        `${this.name}: ${why}`,
      );
    } finally {
      this.close();
    }
  }

  /** Answers one packet; `false` when the connection must close. */
  async #handle(type: number, payload: Uint8Array): Promise<boolean> {
    const { host: { log }, storage } = this;
    const packet = { type, payload };
    if (storage.state().encrypted) return await this.#refuseEncrypted();
    switch (type) {
      case PacketType.Change:
        await this.#change(packet);
        return true;
      case PacketType.Rewind: {
        const to = decodeVersion(packet);
        // Said once it is this connection's to do: a refused one is a NACK line, bounded.
        await this.#write(to, () => {
          log("info", `${this.name}: REWIND to ${to}`);
          return storage.rewind(to);
        });
        return true;
      }
      case PacketType.ReqMetadata: {
        const metadata = storage.metadata();
        this.#toldVersion = metadata.version;
        await this.#send(encodeMetadata(metadata));
        return true;
      }
      case PacketType.Restore:
        try {
          await this.#restore();
        } catch (error) {
          if (error instanceof ClientGone) throw error.cause;
          // The backup could not be read or sent (damaged, a failing disk): wire v1 has no
          // packet to say so.
          log(
            "error",
            `${this.name}: RESTORE failed: ${(error as Error).message}; closing the connection`,
          );
          return false;
        }
        return true;
      case PacketType.Compact:
        return await this.#compact();
      case PacketType.Ack:
      case PacketType.Nack:
      case PacketType.Metadata:
      case PacketType.CompactRes:
        log("debug", `${this.name}: ignoring ${packetName(type)}`);
        return true;
    }
    this.host.logFailure(
      "protocol",
      "warning",
      `${this.name}: closing: unknown packet ${packetName(type)}`,
    );
    return false;
  }

  /**
   * A CHANGE: refused before it is inflated when another connection writes the backup or it
   * is at its quota; inflated within what a record holds, what the quota leaves, and the
   * server's budget of bytes inflated at once (a connection past it waits); then stored.
   * Dropped, never stored, if the connection closes first (taken over, its node removed, the
   * server stopping): the backup may have another writer by then.
   */
  async #change(packet: Packet): Promise<void> {
    const { host, storage } = this;
    const version = changeVersion(packet);
    const refusal = this.#refusal(mostChangeBytes(0));
    if (refusal) return await this.#nack(version, refusal);
    const closed = this.#closing.signal;
    const held = await inflateChangeBody(
      host,
      storage.state().bytes,
      (max) => decodeChange(packet, max),
      closed,
    );
    if (held === OVER_QUOTA) {
      return await this.#nack(version, this.#overQuota(host.limits.quotaBytes!).message);
    }
    try {
      let change: ReturnType<typeof decodeChange> | undefined = held.value;
      const { version: at, bytes } = change;
      host.log("debug", `${this.name}: CHANGE ${at}`);
      // Given back (and let go) once stored or refused, before the answer: a peer that does
      // not read its ACK must not hold the budget every other connection inflates within.
      await this.#write(at, () => storage.append(change!, closed), mostChangeBytes(bytes), () => {
        change = undefined;
        held.release();
      });
    } finally {
      held.release();
    }
  }

  /** Wire v1 carries plain changes and restores records: an encrypted backup is v2 only. */
  async #refuseEncrypted(): Promise<false> {
    this.host.logFailure(
      "v1Refused",
      "warning",
      `${this.name}: refused: wire v1 to an encrypted backup, which is v2 only`,
    );
    await this.#send(encodeVersionPacket(PacketType.Nack, this.storage.state().version));
    return false;
  }

  /**
   * A SNAPSHOT (a whole database, deflated, in one packet): its payload into a temporary file
   * as it arrives, inflated from there a part at a time, the base made of that, and ACK; never
   * whole in memory. A disk that fails while it arrives is answered NACK once it is all read,
   * as a failure to store it is.
   */
  async #snapshot(): Promise<boolean> {
    const { host: { log }, storage } = this;
    const [upload, database] = [storage.uploadPath(this.id), storage.uploadPath(this.id, "db")];
    // An encrypted backup's directory never holds a plain database, not even for a moment.
    const encrypted = storage.state().encrypted;
    const quota = this.host.limits.quotaBytes;
    // Nothing is written of a snapshot that will be refused (another writer, the quota, a
    // backup that is not empty): it is read and dropped, then answered.
    let dropped: Error | undefined;
    const keep = (deflated: number) => {
      if (encrypted) return undefined;
      try {
        const refusal = this.#refusal(deflated);
        if (refusal) throw new RefusedError(refusal);
        storage.refuseSnapshot();
      } catch (error) {
        dropped = error as Error;
        return undefined;
      }
      return upload;
    };
    try {
      const received = await receiveSnapshot(this.#reader, keep);
      if (encrypted) return await this.#refuseEncrypted();
      const { version, size, failure } = received;
      const room = quota === undefined ? MAX_DATABASE_BYTES : quota - storage.state().bytes;
      await this.#write(version, async () => {
        if (dropped) throw dropped;
        // Said once it is this connection's to store: a refused one is a NACK line, bounded.
        log("info", `${this.name}: SNAPSHOT ${version} (${size} bytes deflated)`);
        if (failure) throw failure;
        storage.refuseSnapshot(version);
        try {
          await inflateUpload(upload, size, database, Math.min(room, MAX_DATABASE_BYTES));
        } catch (error) {
          if (!(error instanceof InflateError)) throw error;
          if (error.overLimit && room < MAX_DATABASE_BYTES) throw this.#overQuota(quota!);
          throw new WireError(`SNAPSHOT ${version} does not decompress: ${error.message}`);
        }
        // The deflated copy goes before the base is made: the disk holds two copies at most.
        removeIfExists(upload);
        await storage.storeSnapshotFile(version, database, this.#closing.signal);
      }, size);
      return true;
    } finally {
      removeIfExists(upload);
      removeIfExists(database);
    }
  }

  /**
   * Why this connection may not write `bytes` more, if it may not: another writer of the
   * backup (else this one becomes its writer), or the quota, which a write that adds nothing
   * (a rewind) may pass: it may free room.
   */
  #refusal(bytes: number): string | undefined {
    const other = this.host.claimWriter(this, this.storage);
    if (other) {
      return `${other.name} is writing to this backup, and a backup has one writer: stop the ` +
        `other node writing to it; if it is this node's own connection, left open when its ` +
        `network dropped, restart the server (SIGTERM is clean), then the node`;
    }
    const quota = this.host.limits.quotaBytes;
    if (quota !== undefined && bytes > 0 && this.storage.state().bytes + bytes > quota) {
      return this.#overQuota(quota).message;
    }
    return undefined;
  }

  #overQuota(quota: number): RefusedError {
    return new RefusedError(
      `the backup would pass its quota of ${quota} bytes: ask the server's operator for more, ` +
        `or compact it (lightning-cli backup-compact)`,
    );
  }

  /**
   * Runs a write of about `bytes` for this connection as the backup's writer, within the
   * quota, and answers it: ACK with the version after it, or NACK with the version as it
   * stands when it is refused or fails; `settled` runs once it is done or refused, before the
   * answer is sent.
   */
  async #write(
    version: number,
    write: () => unknown,
    bytes = 0,
    settled?: () => void,
  ): Promise<void> {
    const { storage } = this;
    let refusal = this.#refusal(bytes);
    let kind: FailureKind = "v1Refused";
    if (!refusal) {
      let after: number | undefined;
      try {
        const result = await write();
        after = typeof result === "number" ? result : storage.state().version;
      } catch (error) {
        // Dropped as its connection closed: there is no one to answer.
        if (error instanceof WireError || error === this.#closing.signal.reason) throw error;
        refusal = (error as Error).message;
        if (!(error instanceof RefusedError)) {
          refusal = `cannot store it: ${refusal}`;
          kind = "v1Storage";
        }
      }
      settled?.();
      // Stored: a client gone meanwhile is a lost connection, not a refusal.
      if (after !== undefined) return await this.#send(encodeVersionPacket(PacketType.Ack, after));
    }
    settled?.();
    await this.#nack(version, refusal!, kind);
  }

  /**
   * Refuses a write of `version`, saying why in the log (a line of `kind`, bounded: any client
   * may write over v1): NACK, the version as it stands.
   */
  async #nack(version: number, refusal: string, kind: FailureKind = "v1Refused"): Promise<void> {
    this.host.logFailure(
      kind,
      "error",
      `${this.name}: refused version ${version}: ${refusal}; answering NACK`,
    );
    await this.#send(encodeVersionPacket(PacketType.Nack, this.storage.state().version));
  }

  /**
   * Compacts the backup in a worker and answers COMPACT_RES: the Python server's fields, then
   * ours. Other connections go on meanwhile, the writer's too; this one waits, as in v1. A
   * compaction that fails closes the connection without an answer, as a v1 server does.
   */
  async #compact(): Promise<boolean> {
    const { host: { log }, storage } = this;
    const failed = (error: unknown, then = "closing the connection, as a v1 server does") =>
      log(
        "warning",
        `${this.name}: COMPACT failed, the backup untouched: ${(error as Error).message}; ${then}`,
      );
    // A client that closes meanwhile (a Python plugin's node restarted while its hooks waited)
    // is let go at once: as the writer, this connection would refuse the restarted node's
    // changes until the compaction ends. The compaction goes on.
    const next = this.#peeking = this.#reader.peek();
    const gone = new Promise<"gone">((resolve) => {
      next.then((byte) => byte === null && resolve("gone"), () => resolve("gone"));
    });
    const compaction = compactLogged(storage, this.name, log);
    let result: CompactionResult | "gone";
    try {
      result = await Promise.race([compaction, gone]);
    } catch (error) {
      failed(error);
      return false;
    }
    if (result === "gone") {
      if (!this.closed) {
        log("info", `${this.name}: closed by the client during its COMPACT, which goes on`);
      }
      compaction.catch((error) => failed(error, "its client had left"));
      return false;
    }
    await this.#send(encodeCompactResult({ ...result }));
    return true;
  }

  /**
   * Streams the backup up to the version this connection was told, then DONE. Packets go out
   * in batches of about {@linkcode RESTORE_BATCH_BYTES}: thousands of small changes would
   * otherwise cost a write each.
   */
  async #restore(): Promise<void> {
    const { host: { log }, storage } = this;
    const to = this.#toldVersion ?? storage.state().version;
    log("info", `${this.name}: RESTORE up to version ${to}`);
    let snapshot: SnapshotStream | undefined;
    let batch: Uint8Array[] = [];
    let batched = 0;
    let sent = 0;
    const send = async (bytes: Uint8Array) => {
      try {
        await this.#send(bytes);
      } catch (error) {
        throw new ClientGone(error);
      }
    };
    const flush = async () => {
      if (batched > 0) await send(concat(batch));
      batch = [];
      batched = 0;
    };
    const queue = async (packet: Uint8Array) => {
      batch.push(packet);
      batched += packet.length;
      if (batched >= RESTORE_BATCH_BYTES) await flush();
    };
    // The snapshot's compression is spooled beside the backup, not held: a database's worth.
    const spool = (version: number) =>
      snapshotStream(version, FAST_LEVEL, storage.uploadPath(this.id, "restore"));
    try {
      for (const entry of storage.entries(to)) {
        if (entry.kind === "snapshot-part") {
          snapshot ??= spool(entry.version);
          await snapshot.add(entry.bytes);
          continue;
        }
        // Bytes that fail their checks end the backup, after the version this connection was
        // told: nothing of them is sent.
        if (entry.kind === "tail") break;
        if (entry.kind === "snapshot-end") {
          snapshot ??= spool(entry.version);
          await flush();
          await snapshot.send(send);
          snapshot.close();
          snapshot = undefined;
        } else {
          await queue(encodeChange(entry.version, entry.statements, FAST_LEVEL));
        }
        sent++;
      }
    } finally {
      // A base that fails its checks part way ends the restore; its compression goes too.
      snapshot?.close();
    }
    await queue(encodePacket(PacketType.Done));
    await flush();
    log("info", `${this.name}: RESTORE sent ${sent} records`);
  }

  async #send(bytes: Uint8Array): Promise<void> {
    await writeFully(this.conn, bytes);
    this.#lastActive = performance.now();
  }

  close(): void {
    if (this.closed) return;
    this.#closing.abort();
    closeQuietly(this.conn);
  }
}
