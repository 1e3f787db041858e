import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { OversizedPacketError, PacketReader } from "./packet_reader.ts";
import { WireError } from "./packets.ts";

/** A source that gives `bytes`, then the end of the stream. */
function source(bytes: Uint8Array): { read(buffer: Uint8Array): Promise<number | null> } {
  let at = 0;
  return {
    read(buffer) {
      if (at === bytes.length) return Promise.resolve(null);
      const n = Math.min(buffer.length, bytes.length - at);
      buffer.set(bytes.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("PacketReader: a peer that answers with text is said to be no cln-backup peer", async () => {
  for (
    const [answer, line] of [
      ["HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 400 Bad Request"],
      ["SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "SSH-2.0-OpenSSH_9.2p1 Debian-2"],
    ]
  ) {
    const reader = new PacketReader(source(new TextEncoder().encode(answer)));
    const error = await assertRejects(() => reader.next());
    assert(error instanceof WireError);
    assertEquals(
      error.message,
      `the other end sent text ("${line}"), not cln-backup's protocol: it is not a ` +
        `cln-backup server or client (an HTTP or SSH port?): check the address and port`,
    );
  }
  // Bytes that are not text keep the size they declare in the error.
  const binary = new Uint8Array([0x02, 0xff, 0xff, 0xff, 0xff, 0x00]);
  const oversized = await assertRejects(() => new PacketReader(source(binary)).next());
  assert(oversized instanceof OversizedPacketError, oversized.message);
});
