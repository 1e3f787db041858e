/**
 * The inflate budget against a peer that stops reading: its connection's ACK cannot be
 * written (TCP's window is shut), and whatever it holds of the budget must not keep every
 * other node's changes waiting.
 */
import { assert, assertEquals } from "../../tests/support/assert.ts";
import { BackupServer } from "./server.ts";
import { Session } from "./session.ts";
import { ServerStorage } from "./storage.ts";
import type { ServerConn } from "./tls_listener.ts";
import { PacketReader } from "../wire/packet_reader.ts";
import { decodeVersion, encodeChange, PacketType } from "../wire/packets.ts";
import { writeFully } from "../wire/conn_io.ts";

/**
 * A connection to a peer that sent `sent` and then stopped reading: every write waits, as
 * one to a shut TCP window does, until the connection is closed.
 */
class StalledPeer implements ServerConn {
  readonly remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "192.0.2.1", port: 1 };
  #sent: Uint8Array | undefined;
  #closed = Promise.withResolvers<void>();
  writes = 0;

  constructor(sent: Uint8Array) {
    this.#sent = sent;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    const sent = this.#sent;
    if (!sent) {
      await this.#closed.promise;
      throw new Deno.errors.BadResource("closed");
    }
    const n = Math.min(buffer.length, sent.length);
    buffer.set(sent.subarray(0, n));
    this.#sent = n === sent.length ? undefined : sent.subarray(n);
    return n;
  }

  async write(_bytes: Uint8Array): Promise<number> {
    this.writes++;
    await this.#closed.promise;
    throw new Deno.errors.BadResource("closed");
  }

  close(): void {
    this.#closed.resolve();
  }

  setNoDelay(): void {}
  setKeepAlive(): void {}
}

/** A statement of `bytes` bytes: it deflates to little, and inflates to `bytes`. */
const statementOf = (bytes: number) => "a".repeat(bytes);

Deno.test("a peer that stops reading its ACK does not hold the inflate budget from every other node", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "inflate-stall-" });
  const logs: string[] = [];
  const log = (level: string, message: string) => logs.push(`${level}: ${message}`);
  const served = ServerStorage.open(`file://${tmp}/served`, `${tmp}/served`, () => {});
  const other = ServerStorage.open(`file://${tmp}/other`, `${tmp}/other`, () => {});
  const budget = 1 << 20;
  const server = new BackupServer({
    hostname: "127.0.0.1",
    port: 0,
    log,
    v1Storage: served,
    limits: { inflatingBytes: budget },
  });
  // The other backup's writer: its change (600 KiB inflated) is stored, its ACK never read.
  const stalled = new StalledPeer(encodeChange(1, [statementOf(600 << 10)]));
  const session = new Session(99, stalled, server, other, new PacketReader(stalled, 1 << 30));
  const running = session.run();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    while (stalled.writes === 0) await new Promise((r) => setTimeout(r, 5));
    assertEquals(other.state().version, 1, "the stalled peer's change is stored");
    // Stored and synced: the inflated body is no longer needed, whatever its ACK does.
    assertEquals(server.inflating.held, 0, "bytes held for a change already stored");
    // A node of the server writes a change of 600 KiB: answered at once, not when the stalled
    // peer's connection ends (which, for a peer that never reads, is never).
    await writeFully(client, encodeChange(1, [statementOf(600 << 10)]));
    const reader = new PacketReader(client, 1 << 20);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = await Promise.race([
      reader.next(),
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 5_000)),
    ]);
    clearTimeout(timer);
    assert(answer, `no answer in 5 s: ${server.inflating.waiting} change(s) wait for the budget`);
    assertEquals([answer.type, decodeVersion(answer)], [PacketType.Ack, 1]);
  } finally {
    client.close();
    session.close();
    await running;
    await server.close();
    other.close();
    Deno.removeSync(tmp, { recursive: true });
  }
});
