/**
 * `upgrade --encrypt` of a plain backup on a server (wire v2), made where the key is: the node
 * fetches the backup's files (RESTORE), copies them into an encrypted backup here, keeping
 * every base, log and record with its version (file/encrypted_copy.ts), reads the copy back
 * with the new key, and uploads it (SEALED_UPGRADE, each segment as FILE and DATA, then DONE).
 * The server checks what it can without the key, stages it beside the plain backup and swaps
 * it in whole (lib/server/staged_upgrade.ts). The server never sees the new backup's
 * plaintext; the node's copy of the plain one is removed once sealed.
 *
 * @module
 */
import { basename } from "node:path";
import type { BackupDescription } from "../backend.ts";
import type { NewEncryption } from "../file/create.ts";
import { copyEncrypted } from "../file/encrypted_copy.ts";
import { FileBackupReader } from "../file/reader.ts";
import { readLayout } from "../../format/layout.ts";
import { atStep } from "../../fs/step_seam.ts";
import {
  decodePlace,
  decodeVersionFrame,
  encodeFile,
  encodeFrame,
  encodeSealedUpgrade,
  encodeVersionFrame,
  V2Type,
} from "../../wire/packets_v2.ts";
import { refusal, type SocketUrl, WireConnection } from "./connection.ts";
import type { NodeCredential } from "./credential.ts";
import { sendFile } from "./send_file.ts";
import { CopiedBackupReader } from "./copy_reader.ts";

/** What an upgrade of a server backup needs. */
export interface SealedUpgradeRequest {
  url: string;
  target: SocketUrl;
  credential: NodeCredential;
  encryption: NewEncryption;
  /** Where the fetch and the encrypted copy are made (the node's cln-backup-scratch). */
  scratch: string;
  timeoutMs: number;
  /** How long the server may take to check the copy and swap it in. */
  commitTimeoutMs: number;
  /** Runs just before DONE commits the copy: the node's key file goes in place. */
  beforeCommit(): void;
}

/** The prefix of an upgrade's work directory in the scratch directory. */
export const UPGRADE_PREFIX = "sealed-upgrade-";

/** The key id the node's backup on the server is sealed with (PLACE); none: plain. */
export async function serverKeyId(
  target: SocketUrl,
  credential: NodeCredential,
  timeoutMs: number,
): Promise<Uint8Array | undefined> {
  const conn = await WireConnection.open(target, timeoutMs, credential);
  try {
    const reply = await conn.request(encodeFrame(V2Type.ReqPlace));
    if (reply.type === V2Type.Error) throw refusal(reply, "REQ_PLACE");
    return decodePlace(reply).keyId;
  } finally {
    conn.close();
  }
}

/**
 * Encrypts the plain backup on the server keeping every version it holds; returns what the
 * plain one held. Throws the server's refusal, the plain backup then unchanged.
 */
export async function upgradeOnServer(request: SealedUpgradeRequest): Promise<BackupDescription> {
  const { url, encryption, scratch } = request;
  Deno.mkdirSync(scratch, { recursive: true, mode: 0o700 });
  const work = Deno.makeTempDirSync({ dir: scratch, prefix: UPGRADE_PREFIX });
  try {
    const { target, timeoutMs, credential } = request;
    const copy = await CopiedBackupReader.fetch(url, target, timeoutMs, credential, work);
    const sealed = `${work}/encrypted`;
    let before: BackupDescription;
    try {
      before = copy.describe();
      if (before.tornBytes > 0) {
        throw new Error(
          `the backup on the server ends in ${before.tornBytes} bytes that fail their checks ` +
            `(an append cut short): start the node once so the plugin settles them, stop it, ` +
            `then run this again`,
        );
      }
      Deno.mkdirSync(sealed);
      copyEncrypted(copy.local.dir, sealed, encryption);
    } catch (error) {
      // A file of the copy is named as the server's (the copy is removed).
      if (error instanceof Error) {
        error.message = error.message.replaceAll(`${copy.local.dir}/`, `${url} `);
      }
      throw error;
    } finally {
      copy.close();
    }
    // Read back with the new key, every record of the newest base and the logs opened.
    const reader = new FileBackupReader(url, sealed, { key: encryption.key });
    const after = reader.describe();
    for (const _ of reader.entries()) continue;
    if (after.firstVersion !== before.firstVersion || after.lastVersion !== before.lastVersion) {
      throw new Error(
        `the encrypted copy holds versions ${after.firstVersion} to ${after.lastVersion}, the ` +
          `plain backup ${before.firstVersion} to ${before.lastVersion}: please report this`,
      );
    }
    await upload(request, sealed, before.lastVersion);
    return before;
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
}

/** SEALED_UPGRADE, each segment of `dir`, DONE; the server's ACK after its swap. */
async function upload(request: SealedUpgradeRequest, dir: string, version: number) {
  const layout = readLayout(dir);
  const paths = [...layout.bases, ...layout.logs].map((segment) => segment.path);
  const bytes = paths.reduce((sum, path) => sum + Deno.statSync(path).size, 0);
  const { wrappedKey } = request.encryption;
  const conn = await WireConnection.open(request.target, request.timeoutMs, request.credential);
  try {
    const reply = await conn.request(encodeSealedUpgrade({ version, bytes, wrappedKey }));
    if (reply.type === V2Type.Error) throw refusal(reply, "the encrypted copy");
    decodeVersionFrame(reply, V2Type.Ack);
    for (const path of paths) {
      await sendFile(conn, path, (size) => encodeFile(basename(path), size));
      atStep("upgrade-upload");
    }
    request.beforeCommit();
    await conn.send(encodeVersionFrame(V2Type.Done, version));
    const done = await conn.receive(request.commitTimeoutMs);
    if (done.type === V2Type.Error) throw refusal(done, "the encrypted copy");
    decodeVersionFrame(done, V2Type.Ack);
  } finally {
    conn.close();
  }
}
