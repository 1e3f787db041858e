/**
 * The inflate budget against connections closed while their change waits for room (SIGTERM,
 * remove-node, a takeover): the change is dropped, never stored, and its place in line goes
 * to the others at once.
 */
import { assert, assertEquals } from "../../tests/support/assert.ts";
import { RawClient, startServer } from "../../tests/support/wire_server.ts";
import { withServer } from "../../tests/support/v2_server.ts";
import { bumpStatement } from "../../tests/support/statements.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { socketUrl } from "../backends/socket/backend.ts";
import { WireConnection } from "../backends/socket/connection.ts";
import { encodeChange } from "../wire/packets.ts";
import { decodeVersionFrame, encodeChangeV2, encodeFrame, V2Type } from "../wire/packets_v2.ts";
import type { InflateBudget } from "./inflate_budget.ts";

/** Waits (5 s at most) until `done` holds. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (const by = Date.now() + 5_000; !done();) {
    assert(Date.now() < by, `not in 5 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Holds `bytes` of `budget`, as a change being inflated and stored does. */
function hold(budget: InflateBudget, bytes: number) {
  return budget.decode(budget.total, () => ({ bytes }));
}

/** The versions and statements of the changes the backup at `dir` holds. */
function changesIn(dir: string): [number, string[]][] {
  const changes: [number, string[]][] = [];
  for (const entry of new FileBackupReader(`file://${dir}`, dir).entries()) {
    if (entry.kind === "change") changes.push([entry.version, entry.statements]);
  }
  return changes;
}

Deno.test("a v1 change waiting for the inflate budget when the server stops is dropped, not stored", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "inflate-closed-" });
  const { server } = startServer(`${tmp}/backup`);
  try {
    const full = await hold(server.inflating, server.inflating.total);
    const client = await RawClient.connect(server.port);
    await client.send(encodeChange(1, [bumpStatement(0)]));
    await until(() => server.inflating.waiting === 1, "the change waits for room");
    const stopping = server.close();
    // It leaves the line as its connection closes, before any room is free.
    await until(() => server.inflating.waiting === 0, "the closed connection's change leaves");
    full.release();
    await stopping;
    assertEquals(await client.next(), null, "no answer: the connection closed");
    client.close();
    assertEquals(server.inflating.held, 0);
    assertEquals(changesIn(`${tmp}/backup`), []);
  } finally {
    await server.close();
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("a removed node's change first in line for the inflate budget is dropped, and holds no one behind it", async () => {
  await withServer(async ({ url, credential, nodes, server, logs }) => {
    const budget = server.inflating;
    const most = await hold(budget, budget.total - (64 << 10));
    const alice = await WireConnection.open(socketUrl(url), 5_000, credential("alice"));
    const bob = await WireConnection.open(socketUrl(url), 5_000, credential("bob"));
    try {
      // Alice's change (600 KiB inflated) does not fit in the 64 KiB left: it waits, first in
      // line, for more; bob's small one, which would fit, waits behind it.
      await alice.send(encodeChangeV2(1, ["a".repeat(600 << 10)]));
      await until(() => budget.waiting === 1, "alice's change waits");
      await bob.send(encodeChangeV2(1, [bumpStatement(0)]));
      await until(() => budget.waiting === 2, "bob's change waits behind it");
      nodes.remove("alice");
      // Alice's connection closes: her change leaves the line, and bob's goes in.
      const answer = await bob.receive();
      assertEquals([answer.type, decodeVersionFrame(answer, V2Type.Ack)], [V2Type.Ack, 1]);
      assert(logs.some((l) => /node alice's key was removed/.test(l)), "alice was closed");
      most.release();
      await until(() => budget.held === 0 && budget.waiting === 0, "the budget is free");
      assertEquals(changesIn(nodes.backupDir("alice")), []);
      assertEquals(changesIn(nodes.backupDir("bob")), [[1, [bumpStatement(0)]]]);
    } finally {
      // Else a failure here would leave the server's stop waiting for room.
      most.release();
      alice.close();
      bob.close();
    }
  }, { inflatingBytes: 1 << 20 });
});

Deno.test("a writer taken over while its change waits for the inflate budget never has it stored", async () => {
  await withServer(async ({ url, credential, server, logs }) => {
    const budget = server.inflating;
    const full = await hold(budget, budget.total);
    const open = () => WireConnection.open(socketUrl(url), 5_000, credential("alice"));
    const old = await open();
    const taking = await open();
    try {
      // Both heartbeat (REQ_METADATA): a writer that does is taken over once silent.
      for (const conn of [old, taking]) {
        assertEquals((await conn.request(encodeFrame(V2Type.ReqMetadata))).type, V2Type.Metadata);
      }
      await old.send(encodeChangeV2(1, ["SELECT 'old'"]));
      await until(() => budget.waiting === 1, "the old writer's change waits");
      // A writer whose change waits is answering a request, silent for 0 ms: only a
      // writerSilenceMs of 0 lets the new connection take the backup over (and close the old
      // one) then.
      await taking.send(encodeChangeV2(1, ["SELECT 'new'"]));
      await until(() => logs.some((l) => / takes over /.test(l)), "taken over");
      full.release();
      await until(() => budget.held === 0 && budget.waiting === 0, "the budget is free");
      assertEquals(changesIn(server.nodes!.backupDir("alice")), [[1, ["SELECT 'new'"]]]);
      const answer = await taking.receive();
      assertEquals([answer.type, decodeVersionFrame(answer, V2Type.Ack)], [V2Type.Ack, 1]);
    } finally {
      full.release();
      old.close();
      taking.close();
    }
  }, { writerSilenceMs: 0 });
});
