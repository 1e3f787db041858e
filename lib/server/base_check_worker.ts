/**
 * The server's worker that checks an uploaded sealed base, or an encrypted copy of a backup
 * (see base_check_thread.ts).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { checkSealedBackup, checkSealedBase, SealedInputError } from "./sealed_input.ts";
import type { BaseCheckMessage, BaseCheckRequest } from "./base_check_thread.ts";

self.onmessage = (event: MessageEvent<BaseCheckRequest>) => {
  const { path, owner, backup } = event.data;
  let message: BaseCheckMessage;
  try {
    message = backup
      ? { ok: true, description: checkSealedBackup(path, owner) }
      : { ok: true, header: checkSealedBase(path, owner) };
  } catch (error) {
    message = {
      ok: false,
      message: error instanceof Error ? error.message : String(error),
      sealedInput: error instanceof SealedInputError,
    };
  }
  self.postMessage(message);
  self.close();
};
