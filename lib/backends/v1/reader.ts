/**
 * Reads the Python backup plugin's v1 `.dbak` files (see lib/format/v1.ts).
 *
 * The Python plugin writes each record, then the header, with no fsync, and its rewind
 * only moves the header back while the next record is appended after the dropped one.
 * So this reader trusts the header's version as the last acknowledged change, ignores
 * records past it, and drops a change that a later change to the same version replaced.
 *
 * @module
 */
import type { BackupDescription, BackupEntry, BackupReader } from "../backend.ts";
import { bumpedFrom } from "../../backup/bump.ts";
import {
  decodeV1Header,
  V1_HEADER_SIZE,
  V1_RECORD_HEADER_SIZE,
  type V1Header,
  V1Type,
} from "../../format/v1.ts";
import { CorruptBackupError, readAt } from "../../format/segment.ts";
import {
  decodeStatements,
  MAX_PAYLOAD_BYTES,
  MAX_STATEMENTS,
  tooManyStatements,
} from "../../format/record.ts";

const PART_BYTES = 1024 * 1024;

interface V1Record {
  offset: number;
  type: number;
  version: number;
  length: number;
}

function readExactly(file: Deno.FsFile, offset: number, length: number): Uint8Array {
  const bytes = readAt(file, offset, length);
  if (bytes.length !== length) {
    throw new Error(`Cannot read backup: unexpected end of file at ${offset + bytes.length}`);
  }
  return bytes;
}

function* flush(
  pending: { version: number; statements: string[] } | undefined,
): Generator<BackupEntry> {
  if (pending) yield { kind: "change", ...pending };
}

/** Reads a `.dbak` file of the Python backup plugin, trusting its header's version. */
export class V1BackupReader implements BackupReader {
  /** Reads the `.dbak` at `path`, opened as `url`; nothing is read until it is used. */
  constructor(readonly url: string, readonly path: string) {}

  #open(): { file: Deno.FsFile; header: V1Header; size: number } {
    const file = Deno.openSync(this.path, { read: true });
    const size = file.statSync().size;
    if (size < V1_HEADER_SIZE) {
      file.close();
      throw new CorruptBackupError(this.path, 0, "v1 header shorter than 512 bytes");
    }
    return { file, header: decodeV1Header(readExactly(file, 0, V1_HEADER_SIZE)), size };
  }

  /** Record headers up to the header's version; the rest of the file was never acknowledged. */
  *#records(file: Deno.FsFile, header: V1Header, size: number): Generator<V1Record> {
    let offset = V1_HEADER_SIZE;
    let last = 0;
    while (offset + V1_RECORD_HEADER_SIZE <= size) {
      const view = new DataView(readExactly(file, offset, V1_RECORD_HEADER_SIZE).buffer);
      const record = {
        offset,
        length: view.getUint32(0),
        version: view.getUint32(4),
        type: view.getUint8(8),
      };
      if (offset + V1_RECORD_HEADER_SIZE + record.length > size) break;
      if (record.version > header.version) break;
      if (record.type === V1Type.Change && record.length > MAX_PAYLOAD_BYTES) {
        throw new CorruptBackupError(
          this.path,
          offset,
          `v1 change of ${record.length} bytes, over the limit of ${MAX_PAYLOAD_BYTES}`,
        );
      }
      if (record.type !== V1Type.Change && record.type !== V1Type.Snapshot) {
        throw new CorruptBackupError(this.path, offset, `unknown v1 record type ${record.type}`);
      }
      // A change repeats the version before it (a rewind's replacement, a hook without a bump)
      // or goes one up: past a gap, acknowledged changes are missing.
      const follows = record.version === last || record.version === last + 1;
      if (record.type === V1Type.Change && offset > V1_HEADER_SIZE && !follows) {
        throw new CorruptBackupError(
          this.path,
          offset,
          `v1 change ${record.version} follows version ${last}`,
        );
      }
      yield record;
      last = record.version;
      offset += V1_RECORD_HEADER_SIZE + record.length;
    }
    // The header is written after each record: the records must reach its version, or the
    // file lost changes that were acknowledged (truncated, or a damaged length).
    if (last !== header.version) {
      throw new CorruptBackupError(
        this.path,
        offset,
        `v1 records end at version ${last} but the header says version ${header.version} ` +
          `was stored`,
      );
    }
  }

  *entries(toVersion = Infinity): Iterable<BackupEntry> {
    const { file, header, size } = this.#open();
    try {
      let pending: { version: number; statements: string[] } | undefined;
      let end = V1_HEADER_SIZE;
      for (const record of this.#records(file, header, size)) {
        if (record.version > toVersion) return yield* flush(pending);
        end = record.offset + V1_RECORD_HEADER_SIZE + record.length;
        const payloadAt = record.offset + V1_RECORD_HEADER_SIZE;
        if (record.type === V1Type.Snapshot) {
          if (pending) yield { kind: "change", ...pending };
          pending = undefined;
          for (let at = 0; at < record.length; at += PART_BYTES) {
            const bytes = readExactly(
              file,
              payloadAt + at,
              Math.min(PART_BYTES, record.length - at),
            );
            yield { kind: "snapshot-part", version: record.version, bytes };
          }
          yield { kind: "snapshot-end", version: record.version, totalBytes: record.length };
          continue;
        }
        const payload = readExactly(file, payloadAt, record.length);
        if (tooManyStatements(payload)) {
          throw new CorruptBackupError(
            this.path,
            record.offset,
            `v1 change of more than ${MAX_STATEMENTS} statements`,
          );
        }
        let statements: string[];
        try {
          statements = decodeStatements(payload);
        } catch {
          throw new CorruptBackupError(this.path, record.offset, "v1 change is not UTF-8 text");
        }
        const replaces = pending !== undefined && pending.version === record.version &&
          bumpedFrom(pending.statements) === record.version - 1 &&
          bumpedFrom(statements) === record.version - 1;
        if (pending && !replaces) yield { kind: "change", ...pending };
        pending = { version: record.version, statements };
      }
      yield* flush(pending);
      // The file goes on past the header's version: an append the header never acknowledged.
      if (end < size) {
        const version = pending?.version ?? header.version;
        yield { kind: "tail", version, path: this.path, offset: end, bytes: size - end };
      }
    } finally {
      file.close();
    }
  }

  /** Facts about the file, read anew; the bytes past the header's version count as torn. */
  describe(): BackupDescription {
    const { file, header, size } = this.#open();
    try {
      let records = 0;
      let firstVersion: number | undefined;
      let lastVersion = 0;
      let end = V1_HEADER_SIZE;
      const snapshots: number[] = [];
      for (const record of this.#records(file, header, size)) {
        records++;
        firstVersion ??= record.version;
        lastVersion = record.version;
        if (record.type === V1Type.Snapshot) snapshots.push(record.version);
        end = record.offset + V1_RECORD_HEADER_SIZE + record.length;
      }
      return {
        url: this.url,
        format: "v1 (Python backup plugin)",
        snapshots,
        firstVersion: firstVersion ?? 0,
        lastVersion,
        records,
        bytes: size,
        tornBytes: size - end,
        tail: end < size ? { path: this.path, offset: end, bytes: size - end } : undefined,
      };
    } finally {
      file.close();
    }
  }

  /** Nothing to release: each read opens and closes the file itself. */
  close(): void {}
}
