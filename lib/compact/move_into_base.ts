/**
 * Moves a compaction's scratch database into a new base, so that the disk never holds the
 * database and its base together: the base is written from its last part to its first, and
 * each part is cut off the end of the database file (read into memory, truncated, then
 * written) before the next. At any moment the two files hold at most the larger of the
 * database and its base (plus 32 bytes of record header per MiB of database).
 *
 * A part's place in the base depends on the stored (compressed) lengths of the parts
 * before it, so a first pass compresses every part to learn its length (zstd is
 * deterministic, and sealing adds a fixed overhead), keeping only the lengths: one number
 * per MiB of database. In an encrypted backup each record is sealed where it lands. The base is
 * synced in steps as it is written (see pacer.ts), then renamed into place; the database is
 * consumed whether or not that succeeds (it is a scratch copy).
 *
 * @module
 */
import { baseHeader, SNAPSHOT_PART_BYTES } from "../backends/file/create.ts";
import { syncDir, writeAll } from "../fs/durable.ts";
import { atStep } from "../fs/step_seam.ts";
import { ownLike } from "../fs/owner_like.ts";
import { removeIfExists } from "../fs/exists.ts";
import { checkInterrupted } from "../fs/interrupt.ts";
import { baseName } from "../format/layout.ts";
import {
  encodeRecord,
  encodeSnapshotEnd,
  frameRecord,
  RECORD_HEADER_SIZE,
  RecordKind,
  recordLength,
  storePayload,
} from "../format/record.ts";
import { encodeSegmentHeader, readInto, SEGMENT_HEADER_SIZE } from "../format/segment.ts";
import { zstdBound } from "../format/zstd.ts";
import type { BasePlace } from "../backends/file/create.ts";
import type { Pacer } from "./pacer.ts";

/**
 * Writes `base-<version>.clnb` into `dir` from the database file at `database`, which it
 * truncates to nothing on the way; with `like`, a segment of the backup, owned and
 * permitted as that one.
 */
export function moveIntoBase(
  dir: string,
  database: string,
  version: number,
  place: BasePlace,
  pacer: Pacer,
  like?: string,
): void {
  const name = baseName(version);
  const tmp = `${dir}/${name}.tmp`;
  const input = Deno.openSync(database, { read: true, write: true });
  let out: Deno.FsFile | undefined;
  try {
    const size = input.statSync().size;
    const parts = Math.ceil(size / SNAPSHOT_PART_BYTES);
    const { header, cipher } = baseHeader(version, place);
    // One buffer each for a part, its compression and its record, reused part after part:
    // a new one a part (three MiB) waits for the garbage collector, and a compaction's
    // memory then grew by hundreds of MiB while it wrote a large base.
    const part = new Uint8Array(SNAPSHOT_PART_BYTES);
    const compressed = new Uint8Array(zstdBound(SNAPSHOT_PART_BYTES));
    const framed = new Uint8Array(RECORD_HEADER_SIZE + compressed.length);
    const stored = (i: number) => {
      const at = i * SNAPSHOT_PART_BYTES;
      const bytes = part.subarray(0, Math.min(SNAPSHOT_PART_BYTES, size - at));
      return storePayload(version, readInto(input, at, bytes), compressed);
    };
    // Where each part goes: after the header and the parts before it.
    const offsets = new Float64Array(parts + 1);
    offsets[0] = SEGMENT_HEADER_SIZE;
    for (let i = 0; i < parts; i++) {
      checkInterrupted();
      offsets[i + 1] = offsets[i] + recordLength(stored(i), cipher);
    }
    const sealAt = (offset: number) => cipher && { cipher, offset };

    // Made anew, not opened: a symlink put at that name (the directory is the plugin's
    // user's, and compact may run as root) would take the base's bytes where it points.
    removeIfExists(tmp);
    out = Deno.openSync(tmp, { write: true, createNew: true });
    writeAll(out, encodeSegmentHeader(header));
    out.seekSync(offsets[parts], Deno.SeekMode.Start);
    const end = encodeSnapshotEnd(size, parts);
    writeAll(out, encodeRecord(RecordKind.SnapshotEnd, version, end, sealAt(offsets[parts])));
    for (let i = parts - 1; i >= 0; i--) {
      checkInterrupted();
      const record = frameRecord(
        RecordKind.SnapshotPart,
        version,
        stored(i),
        sealAt(offsets[i]),
        framed,
      );
      if (record.length !== offsets[i + 1] - offsets[i]) {
        throw new Error(`part ${i} of the database encoded to another length the second time`);
      }
      // Freed before it is written: the part is in memory, and the scratch copy goes anyway.
      input.truncateSync(i * SNAPSHOT_PART_BYTES);
      out.seekSync(offsets[i], Deno.SeekMode.Start);
      writeAll(out, record);
      if (i === parts - 1) atStep("compact-mid-base");
      pacer.wrote(out, record.length);
    }
    out.syncSync();
  } finally {
    input.close();
    out?.close();
  }
  if (like !== undefined) ownLike(tmp, like);
  Deno.renameSync(tmp, `${dir}/${name}`);
  syncDir(dir);
}
