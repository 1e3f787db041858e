/**
 * `status` and `verify` of a `socket:` backup over wire v2: the STATUS and VERIFY requests,
 * which the server answers from the backup in place, so nothing of it crosses the wire
 * (docs/PROTOCOL.md). The server's VERIFY is the local one: every record read and checked,
 * the chain followed, and a restore passing SQLite's integrity check.
 *
 * @module
 */
import type { BackupDescription } from "../backend.ts";
import type { VerifyReport } from "../../backup/verify.ts";
import { decodeJson, encodeFrame, v2Name, V2Type } from "../../wire/packets_v2.ts";
import { refusal, WireConnection } from "./connection.ts";
import { RemoteBackupError, socketUrl } from "./backend.ts";
import { DEFAULT_RETRY_POLICY } from "./options.ts";
import type { NodeCredential } from "./credential.ts";

/** A VERIFY restores the whole backup on the server: as patient as a compaction. */
const VERIFY_TIMEOUT_MS = DEFAULT_RETRY_POLICY.compactTimeoutMs;

/** Sends `type` to the server `url` names and returns its JSON answer, or throws its ERROR. */
async function ask<T>(
  url: string,
  credential: NodeCredential,
  type: V2Type.Status | V2Type.Verify,
  answer: V2Type.StatusRes | V2Type.VerifyRes,
  timeoutMs: number,
  answerTimeoutMs = timeoutMs,
): Promise<T> {
  const conn = await WireConnection.open(socketUrl(url), timeoutMs, credential);
  try {
    await conn.send(encodeFrame(type));
    const reply = await conn.receive(answerTimeoutMs);
    if (reply.type === V2Type.Error) throw refusal(reply, v2Name(type));
    if (reply.type !== answer) {
      throw new RemoteBackupError(
        `the server answered ${v2Name(type)} with ${v2Name(reply.type)}, not ${v2Name(answer)}`,
      );
    }
    return decodeJson<T>(reply, answer);
  } finally {
    conn.close();
  }
}

/** What STATUS says of `credential`'s node's backup, as `status` describes a local one. */
export async function serverStatus(
  url: string,
  credential: NodeCredential,
  timeoutMs = DEFAULT_RETRY_POLICY.timeoutMs,
): Promise<BackupDescription & { wrappedFor?: string[] }> {
  const status = await ask<BackupDescription & { wrappedFor?: string[] }>(
    url,
    credential,
    V2Type.Status,
    V2Type.StatusRes,
    timeoutMs,
  );
  return {
    url,
    format: status.format,
    ...(status.encrypted ? { encrypted: true, wrappedFor: status.wrappedFor ?? [] } : {}),
    snapshots: status.snapshots,
    firstVersion: status.firstVersion,
    lastVersion: status.lastVersion,
    records: status.records,
    bytes: status.bytes,
    tornBytes: status.tornBytes,
    tail: status.tail ?? undefined,
  };
}

/**
 * What the server's VERIFY found; rejects with the server's reason when it failed. An
 * encrypted backup's server cannot restore it: it reads every record's checksum and the
 * chain, and says `encrypted`, for the node to restore it with its key.
 */
export async function serverVerify(
  url: string,
  credential: NodeCredential,
  timeoutMs = DEFAULT_RETRY_POLICY.timeoutMs,
): Promise<VerifyReport & { encrypted?: true }> {
  const report = await ask<VerifyReport & { ok: boolean; encrypted?: true }>(
    url,
    credential,
    V2Type.Verify,
    V2Type.VerifyRes,
    timeoutMs,
    VERIFY_TIMEOUT_MS,
  );
  // An older server's VERIFY only read the records: it proves no restore, so it is no verify.
  const restored = report.restoredVersion ??
    (report.records === 0 || report.encrypted ? undefined : null);
  if (typeof report.lastVersion !== "number" || restored === null) {
    throw new RemoteBackupError(
      `the server's VERIFY does not say it restored the backup (an older cln-backup server?): ` +
        `upgrade the server, or restore the backup here to check it`,
    );
  }
  return {
    firstVersion: report.firstVersion,
    lastVersion: report.lastVersion,
    records: report.records,
    snapshots: report.snapshots,
    restoredVersion: restored,
    tail: report.tail ?? undefined,
    ...(report.encrypted ? { encrypted: true } : {}),
  };
}
