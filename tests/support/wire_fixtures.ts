/**
 * The wire v1 sessions recorded between the Python plugin and the Python server
 * (tests/fixtures/wire-v1, see its README): each connection's bytes in each direction.
 *
 * @module
 */
import { concat } from "../../lib/bytes/concat.ts";
import { FIXTURES } from "./fixtures.ts";

export const WIRE_FIXTURES = `${FIXTURES}wire-v1/`;

export interface RecordedConnection {
  conn: number;
  c2s: Uint8Array;
  s2c: Uint8Array;
  /** The reads as recorded, in order, with their direction. */
  chunks: { dir: "c2s" | "s2c"; bytes: Uint8Array }[];
}

function hexBytes(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** The connections of a recorded session, by `conn` number. */
export function recordedSession(name: string): RecordedConnection[] {
  const lines = Deno.readTextFileSync(`${WIRE_FIXTURES}${name}/stream.jsonl`).split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as { conn: number; dir: "c2s" | "s2c"; hex: string });
  const conns = new Map<number, { dir: "c2s" | "s2c"; bytes: Uint8Array }[]>();
  for (const { conn, dir, hex } of lines) {
    if (!conns.has(conn)) conns.set(conn, []);
    conns.get(conn)!.push({ dir, bytes: hexBytes(hex) });
  }
  return [...conns.entries()].sort(([a], [b]) => a - b).map(([conn, chunks]) => ({
    conn,
    chunks,
    c2s: concat(chunks.filter((c) => c.dir === "c2s").map((c) => c.bytes)),
    s2c: concat(chunks.filter((c) => c.dir === "s2c").map((c) => c.bytes)),
  }));
}

/** Splits a byte stream into packets by its framing alone (`u8 type, u32 length`). */
export function splitPackets(bytes: Uint8Array): { type: number; bytes: Uint8Array }[] {
  const packets = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let at = 0; at < bytes.length;) {
    const length = view.getUint32(at + 1);
    packets.push({ type: bytes[at], bytes: bytes.subarray(at, at + 5 + length) });
    at += 5 + length;
  }
  return packets;
}

export const SESSIONS = [
  "01-init-snapshot",
  "02-activity",
  "03-rewind",
  "04-compact",
  "05-restore",
  "06-reconnect",
  "07-probe",
] as const;

/** One request a recorded client sent, and the packets the server sent before the next. */
export interface Exchange {
  request: Uint8Array;
  replies: Uint8Array[];
}

/** A recorded connection as requests and their replies, by the order the reads came in. */
export function exchanges(conn: RecordedConnection): Exchange[] {
  const ends = { c2s: [] as number[], s2c: [] as number[] };
  const packets = { c2s: splitPackets(conn.c2s), s2c: splitPackets(conn.s2c) };
  const done = { c2s: 0, s2c: 0 };
  const bytes = { c2s: 0, s2c: 0 };
  // The chunk index at which each packet's last byte arrived.
  for (const [i, chunk] of conn.chunks.entries()) {
    bytes[chunk.dir] += chunk.bytes.length;
    let end = packets[chunk.dir].slice(0, done[chunk.dir] + 1)
      .reduce((n, p) => n + p.bytes.length, 0);
    while (done[chunk.dir] < packets[chunk.dir].length && end <= bytes[chunk.dir]) {
      ends[chunk.dir].push(i);
      done[chunk.dir]++;
      end += packets[chunk.dir][done[chunk.dir]]?.bytes.length ?? 0;
    }
  }
  return packets.c2s.map((request, k) => ({
    request: request.bytes,
    replies: packets.s2c
      .filter((_, j) =>
        ends.s2c[j] > ends.c2s[k] && (k + 1 === ends.c2s.length || ends.s2c[j] < ends.c2s[k + 1])
      )
      .map((p) => p.bytes),
  }));
}
