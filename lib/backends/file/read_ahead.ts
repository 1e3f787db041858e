/**
 * Reads a file backup in a worker, ahead of a restore: reading, checking (CRC) and
 * decompressing the records then run beside SQLite instead of between its statements. The
 * worker sends {@linkcode StoredEntry}s through a {@linkcode ByteChannel}, whose ring bounds
 * the memory between the two; the restore's side stays synchronous.
 *
 * @module
 */
import { ByteChannel } from "../../fs/byte_channel.ts";
import { CorruptBackupError } from "../../format/segment.ts";
import type { StoredEntry } from "./reader.ts";

/** Bytes in flight between the worker and the restore. */
const RING_BYTES = 8 << 20;
/** How long the worker may take to start (load its modules) before the restore reads alone. */
const START_TIMEOUT_MS = 10_000;

/** What the worker is asked to read. */
export interface ReadAheadRequest {
  url: string;
  dir: string;
  toVersion: number;
  /** An encrypted backup's data key, as bytes: a worker cannot be handed the key object. */
  key?: Uint8Array;
  shared: SharedArrayBuffer;
}

const Code = { Part: 1, End: 2, Change: 3, Tail: 4, Error: 5, Started: 6 } as const;
const HEAD = 9;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A message's parts: its head (code, version), then its body, not copied. */
function message(code: number, version: number, body: Uint8Array): Uint8Array[] {
  const head = new Uint8Array(HEAD);
  const view = new DataView(head.buffer);
  view.setUint8(0, code);
  view.setFloat64(1, version);
  return [head, body];
}

const json = (value: unknown) => encoder.encode(JSON.stringify(value));

/** An entry as the parts of one channel message. */
export function encodeEntry(entry: StoredEntry): Uint8Array[] {
  switch (entry.kind) {
    case "snapshot-part":
      return message(Code.Part, entry.version, entry.bytes);
    case "snapshot-end":
      return message(Code.End, entry.version, json(entry.totalBytes));
    case "stored-change":
      return message(Code.Change, entry.version, entry.payload);
    case "tail":
      return message(Code.Tail, entry.version, json([entry.path, entry.offset, entry.bytes]));
  }
}

/** An error as the parts of one channel message; a {@linkcode CorruptBackupError} stays one. */
export function encodeError(error: unknown): Uint8Array[] {
  const e = error instanceof Error ? error : new Error(String(error));
  const corrupt = e instanceof CorruptBackupError
    ? { path: e.path, offset: e.offset, what: e.what }
    : undefined;
  return message(Code.Error, 0, json({ name: e.name, message: e.message, corrupt }));
}

export const STARTED = message(Code.Started, 0, new Uint8Array());

/** The entry a message holds; throws the error it carries. */
function decodeEntry(bytes: Uint8Array): StoredEntry {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getFloat64(1);
  const body = bytes.subarray(HEAD);
  const parse = () => JSON.parse(decoder.decode(body));
  switch (view.getUint8(0)) {
    case Code.Part:
      return { kind: "snapshot-part", version, bytes: body };
    case Code.End:
      return { kind: "snapshot-end", version, totalBytes: parse() };
    case Code.Change:
      return { kind: "stored-change", version, payload: body };
    case Code.Tail: {
      const [path, offset, tornBytes] = parse();
      return { kind: "tail", version, path, offset, bytes: tornBytes };
    }
    case Code.Error: {
      const { name, message, corrupt } = parse();
      if (corrupt) throw new CorruptBackupError(corrupt.path, corrupt.offset, corrupt.what);
      const error = new Error(message);
      error.name = name;
      throw error;
    }
  }
  throw new Error(`read-ahead: unknown message ${view.getUint8(0)}`);
}

/**
 * The entries of the backup in `dir` up to `toVersion`, read by a worker. When the worker
 * does not start (a build without its module, say), `fallback` reads them here instead, so
 * a restore never depends on the worker.
 */
export function* readAhead(
  request: Omit<ReadAheadRequest, "shared">,
  fallback: () => Iterable<StoredEntry>,
): Generator<StoredEntry> {
  const channel = ByteChannel.create(RING_BYTES);
  let worker: Worker | undefined;
  try {
    worker = new Worker(new URL("./read_ahead_worker.ts", import.meta.url), { type: "module" });
    worker.postMessage({ ...request, shared: channel.shared } satisfies ReadAheadRequest);
    try {
      channel.receive(START_TIMEOUT_MS);
    } catch {
      yield* fallback();
      return;
    }
    for (let bytes = channel.receive(); bytes; bytes = channel.receive()) {
      yield decodeEntry(bytes);
    }
  } finally {
    channel.cancel();
    worker?.terminate();
  }
}
