/**
 * The worker of an encrypted server backup's compaction in the plugin: runs
 * {@linkcode compactSealed} on a thread of its own, so the restore and the sealing of the
 * new base never hold up a `db_write`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { compactSealed, type SealedCompactionRequest } from "./sealed_compaction.ts";
import { lowerWorkerPriority } from "../../compact/worker_priority.ts";
import type { CompactionResult } from "../../compact/compact.ts";

lowerWorkerPriority();

/** What the worker reports. */
export type SealedCompactionMessage =
  | { kind: "done"; result: CompactionResult }
  | { kind: "failed"; message: string };

self.onmessage = async (event: MessageEvent<SealedCompactionRequest>) => {
  let message: SealedCompactionMessage;
  try {
    message = { kind: "done", result: await compactSealed(event.data) };
  } catch (error) {
    message = { kind: "failed", message: error instanceof Error ? error.message : String(error) };
  }
  self.postMessage(message);
};
