/**
 * VERIFY on a server: the backup restored into a scratch directory beside it (inside the
 * storage the server may write, and on its disk), on a worker thread (verify_worker.ts), the
 * scratch directory removed after.
 *
 * @module
 */
import { dirname } from "node:path";
import type { VerifyReport } from "../backup/verify.ts";

export interface VerifyRequest {
  url: string;
  dir: string;
  scratch: string;
}

export type VerifyMessage = { ok: true; report: VerifyReport } | { ok: false; message: string };

const SCRATCH_PREFIX = ".verify-";

/**
 * Removes what a VERIFY that a crash or kill interrupted left beside the backup in `dir`;
 * called once the server holds the backup's write lock, before any VERIFY of it runs.
 */
export function removeStaleScratch(dir: string): void {
  for (const entry of Deno.readDirSync(dirname(dir))) {
    if (entry.isDirectory && entry.name.startsWith(SCRATCH_PREFIX)) {
      Deno.removeSync(`${dirname(dir)}/${entry.name}`, { recursive: true });
    }
  }
}

/**
 * Verifies the backup in `dir` (the backup `backup`, or a view of it: segment_view.ts), with
 * its scratch beside `backup`; rejects with the first check that failed, or with `closed`'s
 * reason once it aborts (its requester gone), the worker stopped.
 */
export async function verifyOnThread(
  url: string,
  dir: string,
  backup = dir,
  closed?: AbortSignal,
): Promise<VerifyReport> {
  closed?.throwIfAborted();
  const scratch = Deno.makeTempDirSync({ dir: dirname(backup), prefix: SCRATCH_PREFIX });
  const worker = new Worker(new URL("./verify_worker.ts", import.meta.url), { type: "module" });
  let stop: (() => void) | undefined;
  try {
    const message = await new Promise<VerifyMessage>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<VerifyMessage>) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        resolve({ ok: false, message: `the verification worker failed: ${event.message}` });
      };
      stop = () => reject(closed!.reason);
      closed?.addEventListener("abort", stop);
      worker.postMessage({ url, dir, scratch } satisfies VerifyRequest);
    });
    if (!message.ok) throw new Error(message.message);
    return message.report;
  } finally {
    if (stop) closed?.removeEventListener("abort", stop);
    worker.terminate();
    removeScratch(scratch, closed?.aborted === true);
  }
}

/**
 * Removes a verification's scratch. A worker `stopped` mid-restore may write on for a moment:
 * its scratch is then left to the next open (removeStaleScratch).
 */
function removeScratch(scratch: string, stopped: boolean): void {
  try {
    Deno.removeSync(scratch, { recursive: true });
  } catch (error) {
    if (!stopped) throw error;
  }
}
