/**
 * Where a log segment starts: the version of its first record, read from its header alone.
 *
 * @module
 */
import { decodeRecordHeader, RECORD_HEADER_SIZE } from "./record.ts";
import { readAt, SEGMENT_HEADER_SIZE } from "./segment.ts";

/** The version of a log's first record; `undefined` when it holds none that checks. */
export function firstVersion(path: string): number | undefined {
  const file = Deno.openSync(path, { read: true });
  try {
    return decodeRecordHeader(readAt(file, SEGMENT_HEADER_SIZE, RECORD_HEADER_SIZE))?.version;
  } finally {
    file.close();
  }
}
