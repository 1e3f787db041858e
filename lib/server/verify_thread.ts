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
 * its scratch beside `backup`; rejects with the first check that failed.
 */
export async function verifyOnThread(
  url: string,
  dir: string,
  backup = dir,
): Promise<VerifyReport> {
  const scratch = Deno.makeTempDirSync({ dir: dirname(backup), prefix: SCRATCH_PREFIX });
  const worker = new Worker(new URL("./verify_worker.ts", import.meta.url), { type: "module" });
  try {
    const message = await new Promise<VerifyMessage>((resolve) => {
      worker.onmessage = (event: MessageEvent<VerifyMessage>) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        resolve({ ok: false, message: `the verification worker failed: ${event.message}` });
      };
      worker.postMessage({ url, dir, scratch } satisfies VerifyRequest);
    });
    if (!message.ok) throw new Error(message.message);
    return message.report;
  } finally {
    worker.terminate();
    Deno.removeSync(scratch, { recursive: true });
  }
}
