/**
 * The one writer of a backup against connections that closed (taken over, their node
 * removed, the server stopping) with a write of theirs still on its way to storage.
 */
import { assert, assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { withServer } from "../../tests/support/v2_server.ts";
import type { Writer } from "./session.ts";

/** A connection as the server's writer role sees it, silent for `silent` ms. */
function connection(name: string, silent: number): Writer {
  const closing = new AbortController();
  return { name, closing: closing.signal, silentMs: () => silent, close: () => closing.abort() };
}

Deno.test("a closed connection's late write never takes the backup back from the writer that took it over", async () => {
  await withServer(({ server, logs }) => {
    const storage = server.storageFor("alice");
    // Silent past writerSilenceMs: a connection that may write would take the backup over.
    const live = connection("live", 5_000);
    const late = connection("late", 0);
    assertEquals(server.claimWriter(live, storage), undefined);
    late.close();
    const dropped = assertThrows(() => server.claimWriter(late, storage));
    assert(dropped === late.closing.reason, "the late write is dropped as its connection closed");
    assert(!live.closing.aborted, "the live writer is not closed for it");
    assert(!logs.some((l) => / takes over /.test(l)), logs.join("\n"));
    assertEquals(server.claimWriter(live, storage), undefined, "live is still the writer");
    return Promise.resolve();
  }, { writerSilenceMs: 1_000 });
});

Deno.test("a writer that closed is no writer for the writes it took in before", async () => {
  await withServer(({ server }) => {
    const storage = server.storageFor("alice");
    const writer = connection("writer", 0);
    assertEquals(server.claimWriter(writer, storage), undefined);
    writer.close();
    const dropped = assertThrows(() => server.claimWriter(writer, storage));
    assert(dropped === writer.closing.reason);
    return Promise.resolve();
  });
});
