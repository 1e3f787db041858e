/**
 * The server process under SIGTERM while a client writes as fast as it can: it exits 0, and
 * the backup it leaves holds every change it acknowledged, nothing torn, nothing after a gap.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { freePort, spawnServer, waitListening } from "./support/server_process.ts";
import { CliProcess } from "./support/cli_process.ts";
import { RawClient } from "./support/wire_server.ts";
import { bumpStatement } from "./support/statements.ts";
import { decodeVersion, encodeChange, PacketType } from "../lib/wire/packets.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";

Deno.test("SIGTERM mid-stream: exit 0, every acknowledged change kept, nothing torn", async () => {
  const root = Deno.makeTempDirSync({ prefix: "server-signal-" });
  const storage = `${root}/served`;
  const port = freePort();
  const server = await spawnServer(storage, port);
  let acked = 0;
  try {
    const client = await RawClient.connect(port);
    const writing = (async () => {
      for (let version = 1;; version++) {
        await client.send(encodeChange(version, [bumpStatement(version - 1)]));
        const reply = await client.next();
        if (!reply) return;
        assertEquals(reply.type, PacketType.Ack);
        acked = decodeVersion(reply);
      }
    })().catch(() => {});
    while (acked < 50) await new Promise((r) => setTimeout(r, 5));
    server.kill("SIGTERM");
    const status = await server.status;
    await writing;
    client.close();
    assertEquals(status.code, 0);
    const stderr = await new Response(server.stderr).text();
    assertEquals(stderr, "");
    const description = new FileBackupReader(`file://${storage}`, storage).describe();
    assertEquals(description.tornBytes, 0);
    assert(description.lastVersion >= acked, `${description.lastVersion} < acked ${acked}`);
    assert(description.lastVersion <= acked + 1, `${description.lastVersion} > acked ${acked} + 1`);
    assertEquals(description.records, description.lastVersion);
  } finally {
    try {
      server.kill("SIGKILL");
    } catch {
      // exited
    }
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("SIGTERM the moment the port answers stops the server cleanly", async () => {
  const root = Deno.makeTempDirSync({ prefix: "server-signal-" });
  const port = freePort();
  // Stopped right after it listens: the SIGTERM waits until it runs on, as it would have
  // arrived in the instant between the two.
  const server = new CliProcess(
    ["server", `file://${root}/served`, `127.0.0.1:${port}`, "--allow-v1"],
    { action: "pause", step: "server-listening" },
  );
  try {
    assertEquals(await server.paused(), "paused");
    await waitListening(port);
    Deno.kill(server.pid, "SIGTERM");
    server.resume();
    const run = await server.result();
    assertEquals([run.code, run.signal], [0, null], run.stderr.join("\n"));
    assert(run.stdout.some((line) => /SIGTERM: stopping/.test(line)), run.stdout.join("\n"));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
