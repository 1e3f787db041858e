/**
 * The worker of an S3 backup's compaction in the plugin: runs {@linkcode compactS3} on a
 * thread of its own, so the rebuild of the database never holds up a `db_write`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { compactS3 } from "./compaction.ts";
import type { S3CompactionMessage, S3CompactionRequest } from "./compaction_service.ts";
import { lowerWorkerPriority } from "../../compact/worker_priority.ts";
import { DataKey } from "../../crypto/data_key.ts";

lowerWorkerPriority();

function post(message: S3CompactionMessage): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<S3CompactionRequest>) => {
  const { url, credentials, renewed, policy, scratch, keyBytes } = event.data;
  try {
    const result = await compactS3(url, credentials, {
      policy,
      renewCredentials: renewed && (() => renewed),
      scratch,
      key: keyBytes && await DataKey.from(keyBytes),
      onProgress: (phase, version) => post({ kind: "progress", phase, version }),
    });
    post({ kind: "done", result });
  } catch (error) {
    post({ kind: "failed", message: error instanceof Error ? error.message : String(error) });
  }
};
