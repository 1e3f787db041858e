/**
 * A wire v2 server from before SNAPSHOT_FILE (0x2C), SEALED_INIT_FILE (0x2D) and SEALED_KEY_IF
 * (0x2E), as far as a client sees it: the handshake as any server does it, REQ_METADATA
 * answered, SEALED_KEY taken (noted, and ACKed), then, for a packet of a type it does not
 * know, what such a server sent: its reader holds an unknown type to no payload, so ERROR
 * BAD_PACKET naming the type by its number, and the connection closes.
 *
 * @module
 */
import { writeFully } from "../../lib/wire/conn_io.ts";
import { nonce, prove } from "../../lib/wire/handshake.ts";
import { type Framing, PacketReader } from "../../lib/wire/packet_reader.ts";
import {
  decodeHello,
  encodeChallenge,
  encodeError,
  encodeMetadataV2,
  encodeVersionFrame,
  encodeWelcome,
  ErrorCode,
  V2_FRAMING,
  V2Type,
} from "../../lib/wire/packets_v2.ts";

const NEWER = new Set<number>([V2Type.SnapshotFile, V2Type.SealedInitFile, V2Type.SealedKeyIf]);

/** v2's framing without the newer types. */
const OLDER_FRAMING: Framing = {
  ...V2_FRAMING,
  limit: (type, max) => NEWER.has(type) ? 0 : V2_FRAMING.limit(type, max),
  name: (type) => NEWER.has(type) ? `type 0x${type.toString(16)}` : V2_FRAMING.name(type),
};

export interface OlderServer {
  url: string;
  /** The key.json each SEALED_KEY sent. */
  sealedKeys: Uint8Array[];
  close(): Promise<void>;
}

/** Serves any node whose key is `key`, answering the first packet after the handshake. */
export function startOlderServer(key: Uint8Array): OlderServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sealedKeys: Uint8Array[] = [];
  const serve = async (conn: Deno.Conn) => {
    const reader = new PacketReader(conn, 1 << 20, OLDER_FRAMING);
    try {
      const hello = decodeHello((await reader.next())!);
      const serverNonce = nonce();
      await writeFully(conn, encodeChallenge(serverNonce));
      await reader.next(); // AUTH: taken as it comes, the test's key being the node's
      const input = { node: hello.node, clientNonce: hello.nonce, serverNonce };
      const metadata = { version: 0, prevVersion: 0, records: 0 };
      await writeFully(conn, encodeWelcome(await prove(key, "server", input), metadata));
      // REQ_METADATA is answered, as by every v2 server (the client's heartbeat at connect).
      let packet;
      while ((packet = await reader.next())?.type === V2Type.ReqMetadata) {
        await writeFully(conn, encodeMetadataV2(metadata));
      }
      if (packet?.type === V2Type.SealedKey) {
        sealedKeys.push(packet.payload.slice());
        await writeFully(conn, encodeVersionFrame(V2Type.Ack, 0));
      }
    } catch (error) {
      const message = `${(error as Error).message}: closing the connection`;
      await writeFully(conn, encodeError({ code: ErrorCode.BadPacket, version: 0, message }))
        .catch(() => {});
    } finally {
      conn.close();
    }
  };
  const accepting = (async () => {
    const served: Promise<void>[] = [];
    for await (const conn of listener) served.push(serve(conn));
    await Promise.all(served);
  })();
  return {
    url: `socket:127.0.0.1:${listener.addr.port}`,
    sealedKeys,
    async close() {
      listener.close();
      await accepting;
    },
  };
}
