/**
 * The server's verification worker: runs {@linkcode verifyBackup} on a thread of its own, so
 * a VERIFY, which restores the whole backup, never stalls the server's other connections.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { FileBackupReader } from "../backends/file/reader.ts";
import { verifyBackup } from "../backup/verify.ts";
import type { VerifyMessage, VerifyRequest } from "./verify_thread.ts";

self.onmessage = (event: MessageEvent<VerifyRequest>) => {
  const { url, dir, scratch } = event.data;
  let message: VerifyMessage;
  try {
    message = { ok: true, report: verifyBackup(new FileBackupReader(url, dir), scratch) };
  } catch (error) {
    message = { ok: false, message: error instanceof Error ? error.message : String(error) };
  }
  self.postMessage(message);
  self.close();
};
