/**
 * The compaction worker: runs {@linkcode compactBackup} on a thread of its own, so the
 * plugin's thread stays free to answer `db_write` while a compaction reads, rebuilds and
 * syncs (see compactor.ts).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { setPriority } from "node:os";
import { compactBackup } from "./compact.ts";
import type { CompactionRequest, WorkerMessage } from "./compactor.ts";
import { DataKey } from "../crypto/data_key.ts";

/**
 * The worker thread's nice value, above the plugin's thread's 0: on a busy machine the
 * scheduler runs the thread that answers the hooks first. On Linux a nice value belongs to
 * a thread, and raising one's own needs no privilege, only Deno's `--allow-sys=setPriority`
 * (the launcher grants it); without it the worker keeps the plugin's priority.
 */
const WORKER_NICE = 10;

try {
  setPriority(0, WORKER_NICE);
} catch {
  // Not granted: the compaction still runs, at the plugin's priority.
}

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
