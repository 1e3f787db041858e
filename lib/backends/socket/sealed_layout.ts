/**
 * How a node lays out its encrypted backup's records on a backup server that holds no key
 * (docs/PROTOCOL.md, "Encrypted backups"): each change is sealed exactly as a file backup's
 * writer seals it, for the place it will have in the server's files (backup id, log, offset),
 * so the server stores the bytes as they come and a restore reads them as a local encrypted
 * backup. The node also decides when the live log rolls, and seals the seal that ends it.
 *
 * @module
 */
import type { Change } from "../backend.ts";
import {
  encodeRecord,
  encodeSeal,
  encodeStatements,
  frameRecord,
  RecordKind,
  recordLength,
  storePayload,
} from "../../format/record.ts";
import { SEGMENT_HEADER_SIZE, SegmentKind } from "../../format/segment.ts";
import { type DataKey, hex, sameBytes } from "../../crypto/data_key.ts";
import { segmentCipher } from "../../crypto/record_cipher.ts";
import { DEFAULT_SEGMENT_BYTES } from "../file/writer.ts";
import type { Place, SealedChange } from "../../wire/packets_v2.ts";
import { cliCommand } from "../../fs/advised_command.ts";

/** A change laid out for the server, and the place after it once stored. */
export interface LaidOut {
  packet: SealedChange;
  next: Place;
}

/**
 * Seals `change` for `place`. `version` is the backup's version before it, which a seal
 * carries when the change starts a new log (the live log would grow past `segmentBytes`, or
 * `roll`: the change replaces one a rewind dropped, which was sealed for `place` and may
 * have been kept by the server, so it must not be sealed for that same place).
 */
export function layOutChange(
  key: DataKey,
  place: Place,
  change: Change,
  version: number,
  segmentBytes = DEFAULT_SEGMENT_BYTES,
  roll = false,
): LaidOut {
  const cipherOf = (log: number) =>
    segmentCipher(key, {
      backupId: place.backupId,
      kind: SegmentKind.Log,
      number: log,
      firstLog: 0,
    });
  const payload = storePayload(change.version, encodeStatements(change.statements));
  const length = recordLength(payload, cipherOf(place.log));
  roll ||= place.offset > SEGMENT_HEADER_SIZE && place.offset + length > segmentBytes;
  const log = roll ? place.log + 1 : place.log;
  const offset = roll ? SEGMENT_HEADER_SIZE : place.offset;
  const seal = roll
    ? encodeRecord(RecordKind.Seal, version, encodeSeal(log), {
      cipher: cipherOf(place.log),
      offset: place.offset,
    })
    : undefined;
  const record = frameRecord(RecordKind.Change, change.version, payload, {
    cipher: cipherOf(log),
    offset,
  });
  return {
    packet: { log: place.log, offset: place.offset, seal, record },
    next: { ...place, log, offset: offset + record.length },
  };
}

/**
 * Checks the server's backup against the node's key: a plain backup and an encrypted one
 * are never mixed, nor are two keys. Throws one line saying which.
 */
export function checkServerKey(place: Place, key: DataKey | undefined, where: string): void {
  if (!key && place.keyId) {
    throw new Error(
      `the backup on ${where} is encrypted, and the node has no backup.key beside its ` +
        `backup.lock: put it back (${cliCommand("rekey", "<url> --key-file <lightning-dir>")})`,
    );
  }
  if (key && !place.keyId) {
    throw new Error(
      `the backup on ${where} is not encrypted, but backup.key beside backup.lock holds a ` +
        `key: a plain and an encrypted backup are never mixed: remove the key file if this ` +
        `backup is meant to be plain, or init an encrypted one`,
    );
  }
  if (key && place.keyId && !sameBytes(key.id, place.keyId)) {
    throw new Error(
      `the key in backup.key (id ${hex(key.id)}) is not the key of the backup on ${where} ` +
        `(id ${hex(place.keyId)}): use this backup's key file`,
    );
  }
}
