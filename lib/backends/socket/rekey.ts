/**
 * `rekey` of an encrypted backup on a server: the node's new `key.json` (the same data key,
 * wrapped for new secrets) replaces the server's (SEALED_KEY_IF), which checks that it names
 * the backup and its key, and that the key.json it replaces is still the one the node read
 * (another rekey may have replaced it while this one waited at its prompt), and writes it
 * atomically. No record changes, so it goes on beside the node's writes.
 *
 * @module
 */
import type { Packet } from "../../wire/packets.ts";
import {
  decodeError,
  decodeVersionFrame,
  encodeFrame,
  encodeSealedKeyIf,
  ErrorCode,
  keyDigest,
  V2Type,
} from "../../wire/packets_v2.ts";
import { refusal, type SocketUrl, WireConnection } from "./connection.ts";
import type { NodeCredential } from "./credential.ts";
import { keyAsItWas, KeyMayBeStoredError, type KeyReplaced } from "../key_replaced.ts";

/**
 * Sends `wrappedKey` to replace the server's key.json, if it is still `read`; throws the
 * server's refusal, a {@linkcode KeyMayBeStoredError} when it was sent and its answer was
 * lost or the server's storage failed, or, when it never went out, the failure saying
 * key.json is as it was. A server older than SEALED_KEY_IF (it refuses the type as a bad
 * packet) is sent SEALED_KEY, which it takes whatever its key.json holds: `"unchecked"`.
 */
export async function sendWrappedKey(
  target: SocketUrl,
  credential: NodeCredential,
  read: Uint8Array,
  wrappedKey: Uint8Array,
  timeoutMs: number,
): Promise<KeyReplaced> {
  const ask = async (request: Uint8Array): Promise<Packet> => {
    const conn = await WireConnection.open(target, timeoutMs, credential).catch((error) => {
      throw unsent(error);
    });
    // Written whole, it may be taken whatever becomes of the answer; a write that failed left
    // the server no whole packet to act on.
    let written = false;
    try {
      return await conn.request(request, () => {
        written = true;
        return Promise.resolve();
      });
    } catch (error) {
      if (!written) throw unsent(error);
      // Sent, perhaps taken: the server may have replaced key.json before the loss.
      throw new KeyMayBeStoredError(
        `the rewrapped key was sent to the server, but its answer was lost ` +
          `(${(error as Error).message})`,
      );
    } finally {
      conn.close();
    }
  };
  let reply = await ask(encodeSealedKeyIf({ read: keyDigest(read), wrappedKey }));
  const older = reply.type === V2Type.Error && unknownToServer(reply, V2Type.SealedKeyIf);
  if (older) reply = await ask(encodeFrame(V2Type.SealedKey, wrappedKey));
  if (reply.type === V2Type.Error) {
    const { code, message } = decodeError(reply);
    // Its storage failed, perhaps once the new key.json was in place (its directory's sync).
    if (code === ErrorCode.Storage) {
      throw new KeyMayBeStoredError(`the server failed to store the rewrapped key (${message})`);
    }
    throw refusal(reply, "the rewrapped key");
  }
  decodeVersionFrame(reply, V2Type.Ack);
  return older ? "unchecked" : "checked";
}

/** Whether `error` is a server's refusal of `type` as a bad packet that names it by number. */
function unknownToServer(error: Packet, type: V2Type): boolean {
  const { code, message } = decodeError(error);
  return code === ErrorCode.BadPacket && message.includes(`type 0x${type.toString(16)} `);
}

/** `error`, which came before the new key.json went out: it says key.json is as it was. */
function unsent(error: unknown): Error {
  if (!(error instanceof Error) || error instanceof Deno.errors.NotCapable) return error as Error;
  error.message = keyAsItWas(error.message);
  return error;
}
