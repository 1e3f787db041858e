/**
 * Reads packets from a byte stream, refusing any whose declared length exceeds what its type
 * can hold, so a broken or hostile peer cannot make us allocate without bound. Wire v1 frames
 * by default; a {@linkcode Framing} adds v2's checksum trailer and limits.
 *
 * @module
 */
import {
  HEADER_BYTES,
  METADATA_BYTES,
  type Packet,
  packetName,
  PacketType,
  WireError,
} from "./packets.ts";

/** Anything with Deno's `read` (a `Deno.Conn`). */
export interface ByteSource {
  read(buffer: Uint8Array): Promise<number | null>;
}

/** The largest CHANGE or SNAPSHOT payload accepted by default: 1 GiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1 << 30;

const FIXED_PAYLOAD: Partial<Record<PacketType, number>> = {
  [PacketType.Rewind]: 4,
  [PacketType.Ack]: 4,
  [PacketType.Nack]: 4,
  [PacketType.Metadata]: METADATA_BYTES,
};

/** How a protocol frames its packets beyond `u8 type, u32 length, payload`. */
export interface Framing {
  /** The most a packet of `type` may carry; unknown types carry nothing we read. */
  limit(type: number, maxPayload: number): number;
  /** The name of a packet type, for errors. */
  name(type: number): string;
  /** Bytes after the payload (v2's checksum). */
  trailerBytes: number;
  /** Throws a {@linkcode WireError} when a whole frame (header to trailer) fails its check. */
  check(frame: Uint8Array): void;
}

/** Wire v1: no trailer, no check. */
export const V1_FRAMING: Framing = {
  limit(type, maxPayload) {
    if (type === PacketType.Change || type === PacketType.Snapshot) return maxPayload;
    if (type === PacketType.CompactRes) return 64 * 1024;
    return FIXED_PAYLOAD[type as PacketType] ?? 0;
  },
  name: packetName,
  trailerBytes: 0,
  check() {},
};

const CHUNK = 64 * 1024;

/** A packet declares more bytes than its type may hold here. */
export class OversizedPacketError extends WireError {
  constructor(name: string, length: number, readonly limit: number) {
    super(`${name} declares ${length} bytes, over its ${limit}`);
    this.name = "OversizedPacketError";
  }
}

/** Where {@linkcode PacketReader.nextTo} puts a packet. */
export interface PayloadSink {
  /** The packet's type and payload length, before any of its payload. */
  start(type: number, length: number): void;
  /** The next piece of the payload: a view that holds only during the call. */
  write(piece: Uint8Array): void;
}

/** The stream ended inside a packet: the connection broke, the peer did not misbehave. */
export class StreamEndedError extends WireError {
  constructor(message: string) {
    super(message);
    this.name = "StreamEndedError";
  }
}

/**
 * `null` (the end of the stream) for a TLS peer gone without close_notify, as node:tls's
 * `destroy` leaves; rethrows anything else. Packets carry their own lengths, so the framing
 * tells a close between packets from one inside a packet, as for TCP.
 */
function endOfStream(error: unknown): null {
  if (error instanceof Deno.errors.UnexpectedEof) return null;
  throw error;
}

export class PacketReader {
  #buffer = new Uint8Array(CHUNK);
  #start = 0;
  #end = 0;

  constructor(
    readonly source: ByteSource,
    readonly maxPayload = DEFAULT_MAX_PAYLOAD_BYTES,
    /** Switched once a connection's first byte has told its protocol. */
    public framing: Framing = V1_FRAMING,
  ) {}

  /** The next byte without taking it; `null` at the end of the stream. */
  async peek(): Promise<number | null> {
    if (!(await this.#fill(1))) return null;
    return this.#buffer[this.#start];
  }

  /** The next packet, or `null` at a clean end of stream (between packets). */
  async next(): Promise<Packet | null> {
    const header = await this.#header();
    if (!header) return null;
    const { type, length } = header;
    const { trailerBytes } = this.framing;
    const frameBytes = HEADER_BYTES + length + trailerBytes;
    if (!(await this.#fill(frameBytes))) throw this.#endedInside(type, length);
    this.framing.check(this.#buffer.subarray(this.#start, this.#start + frameBytes));
    const from = this.#start + HEADER_BYTES;
    this.#start = from + length + trailerBytes;
    // A large snapshot's buffer goes with it, not copied, and is not kept for the small
    // packets after it.
    if (this.#start === this.#end && this.#buffer.length > 4 * CHUNK) {
      const payload = this.#buffer.subarray(from, from + length);
      this.#buffer = new Uint8Array(CHUNK);
      this.#start = this.#end = 0;
      return { type, payload };
    }
    return { type, payload: this.#buffer.slice(from, from + length) };
  }

  /**
   * The next packet with its payload handed to `sink` in pieces as they arrive, never held
   * whole (a v1 SNAPSHOT is a whole database); `false` at a clean end of stream. Only for a
   * framing without a trailer: a trailer's check needs the whole frame.
   */
  async nextTo(sink: PayloadSink): Promise<boolean> {
    if (this.framing.trailerBytes > 0) throw new Error("nextTo reads frames without a trailer");
    const header = await this.#header();
    if (!header) return false;
    this.#start += HEADER_BYTES;
    sink.start(header.type, header.length);
    for (let left = header.length; left > 0;) {
      if (this.#start === this.#end) {
        this.#start = this.#end = 0;
        let read: number | null;
        try {
          read = await this.source.read(this.#buffer);
        } catch (error) {
          read = endOfStream(error);
        }
        if (read === null) throw this.#endedInside(header.type, header.length);
        this.#end = read;
      }
      const n = Math.min(left, this.#end - this.#start);
      sink.write(this.#buffer.subarray(this.#start, this.#start + n));
      this.#start += n;
      left -= n;
    }
    return true;
  }

  #endedInside(type: number, length: number): StreamEndedError {
    return new StreamEndedError(
      `stream ended inside a ${this.framing.name(type)} of ${length} bytes`,
    );
  }

  /**
   * The next header's type and payload length, checked against the framing's limits and
   * left in the buffer; `null` at a clean end of stream.
   */
  async #header(): Promise<{ type: number; length: number } | null> {
    if (!(await this.#fill(HEADER_BYTES))) {
      if (this.#end === this.#start) return null;
      throw new StreamEndedError(`stream ended inside a packet header`);
    }
    const view = new DataView(this.#buffer.buffer, this.#start, HEADER_BYTES);
    const type = view.getUint8(0);
    const length = view.getUint32(1);
    const limit = this.framing.limit(type, this.maxPayload);
    if (length > limit) {
      // A TLS record (an alert or a handshake, version 3.x) where a packet belongs.
      if ((type === 0x15 || type === 0x16) && this.#buffer[this.#start + 1] === 0x03) {
        throw new WireError(
          "the other end speaks TLS: a server set up with `server init-tls` takes a " +
            "socket+tls: URL with its fingerprint (?fp=sha256:..., as init-tls printed it)",
        );
      }
      const text = this.#textLine();
      if (text !== undefined) {
        throw new WireError(
          `the other end sent text ("${text}"), not cln-backup's protocol: it is not a ` +
            `cln-backup server or client (an HTTP or SSH port?): check the address and port`,
        );
      }
      throw new OversizedPacketError(this.framing.name(type), length, limit);
    }
    return { type, length };
  }

  /**
   * The buffered bytes' first line when they are printable ASCII (an HTTP answer, an SSH
   * banner: whose first bytes read as a huge length), else `undefined`.
   */
  #textLine(): string | undefined {
    const bytes = this.#buffer.subarray(this.#start, Math.min(this.#end, this.#start + 60));
    const end = bytes.findIndex((b) => b === 0x0d || b === 0x0a);
    const line = end === -1 ? bytes : bytes.subarray(0, end);
    if (!line.every((b) => b >= 0x20 && b < 0x7f)) return undefined;
    return new TextDecoder().decode(line);
  }

  /** Reads until `n` bytes are buffered; `false` when the stream ends first. */
  async #fill(n: number): Promise<boolean> {
    while (this.#end - this.#start < n) {
      if (this.#buffer.length - this.#start < n || this.#end === this.#buffer.length) {
        this.#compact(n);
      }
      let read: number | null;
      try {
        read = await this.source.read(this.#buffer.subarray(this.#end));
      } catch (error) {
        read = endOfStream(error);
      }
      if (read === null) return false;
      this.#end += read;
    }
    return true;
  }

  /** Moves buffered bytes to the front, growing the buffer when `n` does not fit. */
  #compact(n: number): void {
    const held = this.#buffer.subarray(this.#start, this.#end);
    const size = Math.max(CHUNK, n, held.length + CHUNK);
    const next = size > this.#buffer.length ? new Uint8Array(size) : this.#buffer;
    next.set(held, 0);
    this.#buffer = next;
    this.#end = held.length;
    this.#start = 0;
  }
}
