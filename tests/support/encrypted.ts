/**
 * Encrypted backups for tests: made as `init --encrypt` makes them (a data key wrapped in
 * key.json, the plugin's key file beside backup.lock), with a cheap scrypt so tests stay fast.
 *
 * @module
 */
import { createFileBackup, type SnapshotSource } from "../../lib/backends/file/create.ts";
import { FileBackupReader } from "../../lib/backends/file/reader.ts";
import { writeLockFile } from "../../lib/backup/lock_file.ts";
import { restoreBackup } from "../../lib/backup/restore.ts";
import { DataKey } from "../../lib/crypto/data_key.ts";
import { writeKeyFile } from "../../lib/crypto/key_file.ts";
import { wrapKey } from "../../lib/crypto/wrapped_key.ts";
import {
  decodeSegmentHeader,
  encodeSegmentHeader,
  newBackupId,
  readAt,
  scanSegment,
  SEGMENT_HEADER_SIZE,
} from "../../lib/format/segment.ts";
import { encodeRecord } from "../../lib/format/record.ts";
import { segmentCipher } from "../../lib/crypto/record_cipher.ts";
import { Buffer } from "node:buffer";
import { dumpDatabase } from "./dump.ts";

export const PASSPHRASE = "correct horse battery staple";
/** scrypt at N = 2^10: the cost is stored in key.json, so every reader follows it. */
export const CHEAP_SCRYPT = { logN: 10, r: 8, p: 1 };

/** Creates an encrypted backup at `path`, its key wrapped for {@linkcode PASSPHRASE}. */
export async function makeEncryptedBackup(
  path: string,
  snapshot?: SnapshotSource,
  recipients: string[] = [],
  key?: DataKey,
): Promise<DataKey> {
  key ??= await DataKey.generate();
  const backupId = newBackupId();
  const wrappedKey = await wrapKey(
    key,
    backupId,
    { passphrase: PASSPHRASE, recipients },
    CHEAP_SCRYPT,
  );
  createFileBackup(path, snapshot, { key, backupId, wrappedKey });
  return key;
}

/**
 * A lightning dir's set-up for an encrypted backup at `backup` (`<dir>/backup` by default):
 * the backup, the plugin's key file and backup.lock. Returns the backup's URL and key.
 */
export async function setUpEncryptedNode(
  dir: string,
  backup = `${dir}/backup`,
): Promise<{ url: string; key: DataKey }> {
  const key = await makeEncryptedBackup(backup);
  writeKeyFile(dir, key);
  const url = `file://${backup}`;
  writeLockFile(dir, { backend_url: url });
  return { url, key };
}

/** The dump of the encrypted backup in `dir` restored with `key` (to `toVersion`). */
export function restoredWithKey(
  dir: string,
  key: DataKey,
  scratch: string,
  toVersion?: number,
): string {
  const target = `${scratch}/restored-${crypto.randomUUID()}.sqlite3`;
  restoreBackup(new FileBackupReader(`file://${dir}`, dir, { key }), target, { toVersion });
  const dump = dumpDatabase(target);
  Deno.removeSync(target);
  return dump;
}

/**
 * Seals the base at `path` again as cln-backup did before bases bound their first log: the
 * same records, opened and sealed for their place without it, under a header without the flag
 * (naming `firstLog` instead of its own, when given).
 */
export function sealBaseAsBefore(path: string, key: DataKey, firstLog?: number): void {
  const file = Deno.openSync(path, { read: true });
  const out: Uint8Array[] = [];
  try {
    const header = decodeSegmentHeader(readAt(file, 0, SEGMENT_HEADER_SIZE), path);
    const before = { ...header, firstLog: firstLog ?? header.firstLog, firstLogBound: false };
    const cipher = segmentCipher(key, before);
    out.push(encodeSegmentHeader(before));
    let offset = SEGMENT_HEADER_SIZE;
    const scan = { decode: true, sealed: true, cipher: segmentCipher(key, header) };
    for (const { header: record, payload } of scanSegment(file, path, scan)) {
      const sealed = encodeRecord(record.kind, record.version, payload!, { cipher, offset });
      out.push(sealed);
      offset += sealed.length;
    }
  } finally {
    file.close();
  }
  Deno.writeFileSync(path, Buffer.concat(out));
}
