/**
 * The checks of what a node uploads sealed (sealed_input.ts), on a worker thread
 * (base_check_worker.ts): a sealed base, or a whole encrypted copy of a backup (upgrade
 * --encrypt), may be hundreds of MiB, and the server's other connections, other nodes'
 * included, must not wait while it is read.
 *
 * @module
 */
import type { SegmentHeader } from "../format/segment.ts";
import type { BackupDescription } from "../backends/backend.ts";
import { type BaseOwner, SealedInputError } from "./sealed_input.ts";

/** A base in the file `path`, or (`backup`) the encrypted backup in the directory `path`. */
export interface BaseCheckRequest {
  path: string;
  owner: BaseOwner;
  backup?: true;
}

export type BaseCheckMessage =
  | { ok: true; header?: SegmentHeader; description?: BackupDescription }
  | { ok: false; message: string; sealedInput: boolean };

async function onThread(request: BaseCheckRequest) {
  const worker = new Worker(new URL("./base_check_worker.ts", import.meta.url), {
    type: "module",
  });
  try {
    const message = await new Promise<BaseCheckMessage>((resolve) => {
      worker.onmessage = (event: MessageEvent<BaseCheckMessage>) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        resolve({ ok: false, message: `its checker failed: ${event.message}`, sealedInput: false });
      };
      worker.postMessage(request);
    });
    if (message.ok) return message;
    throw message.sealedInput ? new SealedInputError(message.message) : new Error(message.message);
  } finally {
    worker.terminate();
  }
}

/** {@linkcode checkSealedBase} of `path` on a thread of its own. */
export async function checkSealedBaseOnThread(
  path: string,
  owner: BaseOwner,
): Promise<SegmentHeader> {
  return (await onThread({ path, owner })).header!;
}

/** {@linkcode checkSealedBackup} of the directory `dir` on a thread of its own. */
export async function checkSealedBackupOnThread(
  dir: string,
  owner: BaseOwner,
): Promise<BackupDescription> {
  return (await onThread({ path: dir, owner, backup: true })).description!;
}
