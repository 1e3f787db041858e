/**
 * What an `init` to a backup server leaves when it is cut off after the server stored its
 * snapshot: the connection lost while the server made the base, or `init` killed before it
 * wrote backup.lock. The server then holds a backup that the next `init` of the node would
 * refuse as not empty, though it is that node's. It is recognised by its bytes: the snapshot
 * alone, at the database's version, equal byte for byte to a snapshot of the database now.
 * lightningd changes `data_version` with every write it commits, so a database still at that
 * version is the one the snapshot was taken of; the bytes tell it from another node's backup
 * that happens to be at the same version. An encrypted one is read with the key that init left
 * beside backup.lock (written before it sent the base), so its snapshot is compared decrypted.
 *
 * @module
 */
import type { BackupReader } from "../backends/backend.ts";
import { credentialIn } from "../backends/socket/credential.ts";
import { DEFAULT_RETRY_POLICY } from "../backends/socket/options.ts";
import { SocketBackupReader } from "../backends/socket/reader.ts";
import { CopiedBackupReader } from "../backends/socket/copy_reader.ts";
import { type DataKey, sameBytes } from "../crypto/data_key.ts";
import { KEY_FILE } from "../crypto/key_file.ts";
import { readFull } from "../fs/read_full.ts";

/**
 * Why the server at `url` (reached with the credential in the lightning dir `dir`) does not
 * hold what an interrupted init leaves: the database in the file `snapshot`, at `version`,
 * alone; `undefined` when it does. An encrypted init's must open with `sealed.key`, the one
 * that init left in `dir`'s key file, and with the secret given this time
 * (`sealed.whyNotOpened`); without `sealed`, an encrypted backup is not this init's. Fetches
 * it through `scratch`.
 */
export async function whyNotLeftOnServer(
  url: string,
  dir: string,
  snapshot: string,
  version: number,
  scratch: string,
  sealed?: { key: DataKey; whyNotOpened(dir: string): Promise<string | undefined> },
): Promise<string | undefined> {
  const key = sealed?.key;
  const reader = await SocketBackupReader.fetch(
    url,
    DEFAULT_RETRY_POLICY.timeoutMs,
    credentialIn(dir),
    scratch,
  );
  try {
    const keyId = reader instanceof CopiedBackupReader ? reader.local.keyId() : undefined;
    if ((keyId !== undefined) !== (key !== undefined)) {
      return keyId
        ? "it is encrypted, and this init does not encrypt"
        : "it is plain, and this init encrypts";
    }
    if (keyId && key) {
      if (!sameBytes(keyId, key.id)) {
        return `it is sealed with another key than the one in "${dir}/${KEY_FILE}"`;
      }
      const local = (reader as CopiedBackupReader).local;
      const unopened = await sealed!.whyNotOpened(local.dir);
      if (unopened) return unopened;
      local.key = key;
    }
    return holdsOnly(reader, snapshot, version, key !== undefined)
      ? undefined
      : "its snapshot differs from the database's";
  } finally {
    reader.close();
  }
}

/**
 * Whether `reader` holds exactly the database in the file `snapshot`, at `version`, and
 * nothing after it; an encrypted backup only when `unlocked` (its reader has its key).
 */
export function holdsOnly(
  reader: BackupReader,
  snapshot: string,
  version: number,
  unlocked = false,
): boolean {
  const found = reader.describe();
  if (
    (found.encrypted && !unlocked) || found.tornBytes !== 0 || found.lastVersion !== version ||
    found.snapshots.join() !== String(version)
  ) {
    return false;
  }
  const file = Deno.openSync(snapshot, { read: true });
  try {
    let buffer = new Uint8Array(0);
    let ended = false;
    for (const entry of reader.entries()) {
      // Anything after the snapshot (even a change of no consequence) is not an init's.
      if (ended || entry.kind !== "snapshot-part") {
        if (ended || entry.kind !== "snapshot-end") return false;
        if (readFull(file, new Uint8Array(1)) !== 0) return false;
        ended = true;
        continue;
      }
      if (buffer.length < entry.bytes.length) buffer = new Uint8Array(entry.bytes.length);
      const ours = buffer.subarray(0, entry.bytes.length);
      if (readFull(file, ours) < ours.length || !sameBytes(ours, entry.bytes)) return false;
    }
    return ended;
  } finally {
    file.close();
  }
}
