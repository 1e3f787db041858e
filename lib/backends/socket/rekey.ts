/**
 * `rekey` of an encrypted backup on a server: the node's new `key.json` (the same data key,
 * wrapped for new secrets) replaces the server's (SEALED_KEY), which checks that it names the
 * backup and its key, and writes it atomically. No record changes, so it goes on beside the
 * node's writes.
 *
 * @module
 */
import { decodeVersionFrame, encodeFrame, V2Type } from "../../wire/packets_v2.ts";
import { refusal, type SocketUrl, WireConnection } from "./connection.ts";
import type { NodeCredential } from "./credential.ts";

/** Sends `wrappedKey` to replace the server's key.json; throws the server's refusal. */
export async function sendWrappedKey(
  target: SocketUrl,
  credential: NodeCredential,
  wrappedKey: Uint8Array,
  timeoutMs: number,
): Promise<void> {
  const conn = await WireConnection.open(target, timeoutMs, credential);
  try {
    const reply = await conn.request(encodeFrame(V2Type.SealedKey, wrappedKey));
    if (reply.type === V2Type.Error) throw refusal(reply, "the rewrapped key");
    decodeVersionFrame(reply, V2Type.Ack);
  } finally {
    conn.close();
  }
}
