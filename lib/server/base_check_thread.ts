/**
 * The check of a sealed base a node uploads (sealed_input.ts), on a worker thread
 * (base_check_worker.ts): it reads the whole base, which may be hundreds of MiB, and the
 * server's other connections, other nodes' included, must not wait for it.
 *
 * @module
 */
import type { SegmentHeader } from "../format/segment.ts";
import { type BaseOwner, SealedInputError } from "./sealed_input.ts";

export interface BaseCheckRequest {
  path: string;
  owner: BaseOwner;
}

export type BaseCheckMessage =
  | { ok: true; header: SegmentHeader }
  | { ok: false; message: string; sealedInput: boolean };

/** {@linkcode checkSealedBase} of `path` on a thread of its own. */
export async function checkSealedBaseOnThread(
  path: string,
  owner: BaseOwner,
): Promise<SegmentHeader> {
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
      worker.postMessage({ path, owner } satisfies BaseCheckRequest);
    });
    if (message.ok) return message.header;
    throw message.sealedInput ? new SealedInputError(message.message) : new Error(message.message);
  } finally {
    worker.terminate();
  }
}
