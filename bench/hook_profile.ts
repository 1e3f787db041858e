/**
 * The hook path taken apart: each step cln-backup takes for one `db_write`, run in the
 * bench's process with the plugin's own functions on the same messages, and timed alone.
 * What the round trip holds beyond their sum is the pipes, the event loop and the rest.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { MessageFramer } from "../lib/plugin/framing.ts";
import { parseMessage } from "../lib/plugin/jsonrpc.ts";
import { frame } from "../lib/plugin/stdio.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../lib/format/record.ts";
import { writeAll } from "../lib/fs/durable.ts";

/** The parts, in the order the plugin takes them. */
export const HOOK_PARTS = [
  "frame + JSON parse",
  "statement join",
  "compression (encodeRecord less CRC)",
  "CRC",
  "write",
  "fdatasync",
  "reply",
] as const;
export type HookPart = typeof HOOK_PARTS[number];

/** Times the parts of one `db_write`, appending its record to `log`; ms per part. */
export class HookProfiler {
  readonly samples = new Map<HookPart, number[]>(HOOK_PARTS.map((p) => [p, []]));
  #framer = new MessageFramer();
  #sink = Deno.openSync("/dev/null", { write: true });

  constructor(readonly log: Deno.FsFile) {}

  run(message: Uint8Array): void {
    let t = performance.now();
    const lap = (part: HookPart) => {
      const now = performance.now();
      this.samples.get(part)!.push(now - t);
      t = now;
    };
    const [bytes] = this.#framer.push(message);
    const parsed = parseMessage(bytes);
    if (!parsed.ok) throw new Error(`profile: ${parsed.error}`);
    const { id, params } = parsed.request as unknown as {
      id: string;
      params: { data_version: number; writes: string[] };
    };
    lap("frame + JSON parse");
    const raw = encodeStatements(params.writes);
    lap("statement join");
    const record = encodeRecord(RecordKind.Change, params.data_version, raw);
    const encodeMs = performance.now() - t;
    t = performance.now();
    // Both CRCs encodeRecord takes: the header's 28 bytes and the stored payload.
    crc32(record.subarray(4, 32));
    crc32(record.subarray(32));
    lap("CRC");
    const crcMs = this.samples.get("CRC")!.at(-1)!;
    this.samples.get("compression (encodeRecord less CRC)")!.push(Math.max(0, encodeMs - crcMs));
    t = performance.now();
    writeAll(this.log, record);
    lap("write");
    this.log.syncDataSync();
    lap("fdatasync");
    writeAll(this.#sink, frame({ jsonrpc: "2.0", id, result: { result: "continue" } }));
    lap("reply");
  }

  close(): void {
    this.#sink.close();
  }
}
