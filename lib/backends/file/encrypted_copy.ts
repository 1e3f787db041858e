/**
 * Copies a plain file backup into an encrypted one, segment by segment, keeping every base,
 * every log and every record (seals included) with its version: only the bytes change.
 * Each record is read (checked), then sealed where it lands in the copy.
 *
 * @module
 */
import { writeAll, writeFileDurably } from "../../fs/durable.ts";
import { openSegment, readChain, type Segment } from "../../format/chain.ts";
import { encodeRecord } from "../../format/record.ts";
import {
  CorruptBackupError,
  encodeSegmentHeader,
  scanSegment,
  SEGMENT_HEADER_SIZE,
  SegmentKind,
} from "../../format/segment.ts";
import { segmentCipher } from "../../crypto/record_cipher.ts";
import { WRAPPED_KEY_NAME } from "../../crypto/wrapped_key.ts";
import type { NewEncryption } from "./create.ts";
import { basename } from "node:path";

function copySegment(segment: Segment, into: string, encryption: NewEncryption): void {
  const { key, backupId } = encryption;
  const header = {
    ...segment.header,
    backupId,
    keyId: key.id,
    firstLogBound: segment.header.kind === SegmentKind.Base,
  };
  const cipher = segmentCipher(key, header);
  const input = openSegment(segment.path);
  const out = Deno.openSync(`${into}/${basename(segment.path)}`, { write: true, createNew: true });
  try {
    writeAll(out, encodeSegmentHeader(header));
    let offset = SEGMENT_HEADER_SIZE;
    const records = scanSegment(input, segment.path, { decode: true });
    for (let step = records.next();; step = records.next()) {
      if (step.done) {
        if (step.value.tornBytes > 0) {
          throw new CorruptBackupError(
            segment.path,
            step.value.end,
            "bytes that fail their checks (start the node once so the plugin settles them)",
          );
        }
        break;
      }
      const { header: record, payload } = step.value;
      const bytes = encodeRecord(record.kind, record.version, payload!, { cipher, offset });
      writeAll(out, bytes);
      offset += bytes.length;
    }
    out.syncSync();
  } finally {
    input.close();
    out.close();
  }
}

/**
 * Writes into the empty directory `into` an encrypted copy of the plain backup `dir`: its
 * wrapped key, then every base and every log of its chain.
 */
export function copyEncrypted(dir: string, into: string, encryption: NewEncryption): void {
  const chain = readChain(dir);
  if (chain.keyId !== undefined) {
    throw new Error(`Cannot encrypt backup: "${dir}" is encrypted already`);
  }
  writeFileDurably(into, WRAPPED_KEY_NAME, encryption.wrappedKey);
  for (const segment of [...chain.bases, ...chain.logs]) copySegment(segment, into, encryption);
}
