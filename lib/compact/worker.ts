/**
 * The compaction worker: runs {@linkcode compactBackup} on a thread of its own, so the
 * plugin's thread stays free to answer `db_write` while a compaction reads, rebuilds and
 * syncs (see compactor.ts).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { compactBackup } from "./compact.ts";
import type { CompactionRequest, WorkerMessage } from "./compactor.ts";
import { DataKey } from "../crypto/data_key.ts";
import { lowerWorkerPriority } from "./worker_priority.ts";

lowerWorkerPriority();

function post(message: WorkerMessage): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<CompactionRequest>) => {
  const { url, dir, target, retain, key } = event.data;
  try {
    const work = compactBackup(url, dir, {
      target,
      retain,
      key: key && await DataKey.from(key),
      onProgress: (phase, version) => post({ kind: "progress", phase, version }),
    });
    post({ kind: "done", work });
  } catch (error) {
    post({ kind: "failed", message: error instanceof Error ? error.message : String(error) });
  }
};
