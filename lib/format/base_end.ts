/**
 * A base's snapshot-end record, checked from the base's last bytes alone. The writer's open
 * reads no base whole (a restore does), yet a base cut short at a record boundary (its end
 * record lost to a copy that stopped, or a damaged sector at the end) would otherwise take
 * changes on top of a snapshot nothing can restore.
 *
 * @module
 */
import type { Segment } from "./chain.ts";
import {
  decodeRecordHeader,
  payloadChecks,
  RECORD_HEADER_SIZE,
  RecordKind,
  SEALED_OVERHEAD,
} from "./record.ts";
import { CorruptBackupError, SEGMENT_HEADER_SIZE } from "./segment.ts";

/** The snapshot end's payload: `u64` total bytes, `u32` part count. */
const END_PAYLOAD_BYTES = 12;

/** Throws {@linkcode CorruptBackupError} when `base` does not end with a whole snapshot-end record. */
export function checkBaseEnd(base: Segment): void {
  const stored = END_PAYLOAD_BYTES + (base.header.keyId ? SEALED_OVERHEAD : 0);
  const file = Deno.openSync(base.path, { read: true });
  try {
    const size = file.statSync().size;
    const at = size - RECORD_HEADER_SIZE - stored;
    const bytes = new Uint8Array(RECORD_HEADER_SIZE + stored);
    let read = 0;
    if (at >= SEGMENT_HEADER_SIZE) {
      file.seekSync(at, Deno.SeekMode.Start);
      for (let n; read < bytes.length && (n = file.readSync(bytes.subarray(read))) !== null;) {
        read += n;
      }
    }
    const header = read === bytes.length ? decodeRecordHeader(bytes) : undefined;
    const whole = header?.kind === RecordKind.SnapshotEnd &&
      payloadChecks(header, bytes.subarray(RECORD_HEADER_SIZE));
    if (!whole) {
      throw new CorruptBackupError(
        base.path,
        Math.max(at, SEGMENT_HEADER_SIZE),
        "a base that does not end with its snapshot's end record (cut short?)",
      );
    }
  } finally {
    file.close();
  }
}
