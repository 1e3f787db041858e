/**
 * Faults between the plugin and its backup server, each with the real plugin process under
 * the fake lightningd and our server: connections cut at every packet boundary and in the
 * middle of every packet, both ways; a server that stops answering; one that cannot store
 * (disk full); one that acknowledges the wrong version. After each: the node either went on
 * or stopped cleanly, no change it committed is missing from the backup, none is stored
 * twice, and a restore equals its database.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { type Direction, type Fault, FaultProxy } from "./support/fault_proxy.ts";
import { splitPackets } from "./support/wire_fixtures.ts";
import { startServer } from "./support/wire_server.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { encodeMetadata, encodeVersionPacket, PacketType } from "../lib/wire/packets.ts";
import { PacketReader } from "../lib/wire/packet_reader.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { prng } from "./support/prng.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";

const SCHEMA = [
  "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER, blobval BLOB, PRIMARY KEY (name))",
  "INSERT INTO vars (name, intval) VALUES ('data_version', 0)",
  "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)",
];
const NOTES = 4;
/** Patience small enough for tests, the same code paths as the defaults. */
const PATIENCE = { socket_timeout_s: 1, socket_retries: 3, socket_retry_delay_s: 0.02 };

interface Trial {
  /** Transactions the node committed. */
  committed: number;
  aborted: string | undefined;
  logs: string[];
  /** What the server's backup holds, restored, against the node's database. */
  restored: string | undefined;
  node: string;
  records: number;
}

/** Runs the schema and the notes through `url`, as far as the node gets. */
async function runWorkload(
  root: string,
  url: string,
  lock: Record<string, unknown> = PATIENCE,
): Promise<Omit<Trial, "restored" | "records">> {
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  writeLockFile(dir, { backend_url: url, ...lock });
  const lightningd = FakeLightningd.spawn({ lightningDir: dir });
  let committed = 0;
  try {
    await lightningd.getmanifest();
    committed = await lightningd.commitEach([
      SCHEMA,
      ...Array.from({ length: NOTES }, (_, i) => [`INSERT INTO notes (note) VALUES ('note ${i}')`]),
    ]);
    if (!lightningd.aborted) await lightningd.stop();
  } finally {
    await lightningd.kill().catch(() => {});
  }
  return {
    committed,
    aborted: lightningd.aborted,
    logs: lightningd.logs.map((l) => `${l.level}: ${l.message}`),
    node: dumpDatabase(`${dir}/lightningd.sqlite3`),
  };
}

/** The workload, then what the server's backup holds once the server is stopped. */
async function runNode(
  root: string,
  url: string,
  backupDir: string,
  stopServer: () => Promise<void>,
): Promise<Trial> {
  const run = await runWorkload(root, url);
  await stopServer();
  const reader = new FileBackupReader(`file://${backupDir}`, backupDir);
  const records = reader.describe().records;
  let restored: string | undefined;
  if (records > 0) {
    restoreBackup(reader, `${root}/restored.sqlite3`);
    restored = dumpDatabase(`${root}/restored.sqlite3`);
  }
  return { ...run, records, restored };
}

async function withProxy(fault: Fault | undefined, record = false) {
  const root = Deno.makeTempDirSync({ prefix: "socket-fault-" });
  const server = startServer(`${root}/served`);
  const proxy = new FaultProxy(server.server.port, fault, record);
  const trial = await runNode(
    root,
    `socket:127.0.0.1:${proxy.port}`,
    `${root}/served`,
    async () => {
      await proxy.close();
      await server.server.close();
    },
  );
  Deno.removeSync(root, { recursive: true });
  return { trial, proxy };
}

/** Every change the node committed is in the backup once, and it restores to the node. */
function assertIntact(trial: Trial, what: string): void {
  assertEquals(trial.records, trial.committed, `${what}: records stored`);
  if (trial.committed > 0) assertEquals(trial.restored, trial.node, `${what}: restore`);
}

Deno.test("cut at every packet boundary and mid-packet, both ways: the node goes on", async () => {
  const { trial: clean, proxy } = await withProxy(undefined, true);
  assertEquals(clean.committed, 1 + NOTES);
  assertIntact(clean, "no fault");
  const points: Fault[] = [];
  for (const direction of ["c2s", "s2c"] as Direction[]) {
    let at = 0;
    for (const packet of splitPackets(Uint8Array.from(proxy.recorded[direction]))) {
      points.push({ kind: "cut", direction, at });
      points.push({ kind: "cut", direction, at: at + Math.max(1, packet.bytes.length >> 1) });
      at += packet.bytes.length;
    }
  }
  assert(points.length >= 4 * (2 + NOTES), `${points.length} cut points`);
  for (const fault of points) {
    const what = `cut ${fault.direction} at byte ${fault.at}`;
    const { trial, proxy } = await withProxy(fault);
    assert(proxy.struck, `${what}: the cut happened`);
    assertEquals(trial.aborted, undefined, `${what}: ${trial.logs.join("\n")}`);
    assertEquals(trial.committed, 1 + NOTES, what);
    assertIntact(trial, what);
    assert(proxy.connections >= 2, `${what}: the plugin reconnected`);
  }
});

Deno.test("a server that stops answering: every wait times out, the node stops cleanly", async () => {
  // It hangs in the middle of the third change.
  const { trial } = await withProxy({ kind: "hang", direction: "c2s", at: 200 });
  assert(trial.aborted, "the node stopped");
  assert(trial.committed >= 1 && trial.committed < 1 + NOTES, `${trial.committed} committed`);
  assertMatch(trial.logs.join("\n"), /timed out after 1 s/);
  assertMatch(
    trial.logs.join("\n"),
    /giving up: sending change \d+ to 127\.0\.0\.1:\d+ failed, and 3 reconnects/,
  );
  assertIntact(trial, "hang");
});

Deno.test("the server is killed and restarted mid-stream: the node goes on, nothing lost", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-restart-" });
  try {
    const backupDir = `${root}/served`;
    let server = startServer(backupDir);
    const port = server.server.port;
    const proxy = new FaultProxy(port, { kind: "cut", direction: "c2s", at: 150 });
    // When the cut strikes, the server is replaced by a new one on the same storage.
    const restarting = (async () => {
      while (!proxy.struck) await new Promise((r) => setTimeout(r, 2));
      await server.server.close();
      server = startServer(backupDir, port);
    })();
    const trial = await runNode(root, `socket:127.0.0.1:${proxy.port}`, backupDir, async () => {
      await restarting;
      await proxy.close();
      await server.server.close();
    });
    assertEquals(trial.aborted, undefined, trial.logs.join("\n"));
    assertIntact(trial, "restart");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

/** A fake server that answers METADATA (0, 0, 0) and then each change with `answer`. */
function badServer(answer: (version: number) => Uint8Array): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        const reader = new PacketReader(conn);
        for (let p = await reader.next(); p; p = await reader.next()) {
          const reply = p.type === PacketType.ReqMetadata
            ? encodeMetadata({ version: 0, prevVersion: 0, versionCount: 0 })
            : answer(new DataView(p.payload.buffer, p.payload.byteOffset).getUint32(0));
          await conn.write(reply);
        }
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // closed already
        }
      }
    },
  };
}

Deno.test("a server that ACKs a version it should not: the node stops, saying so", async () => {
  const server = badServer((version) => encodeVersionPacket(PacketType.Ack, version + 1));
  const root = Deno.makeTempDirSync({ prefix: "socket-bad-ack-" });
  try {
    const run = await runWorkload(root, `socket:127.0.0.1:${server.port}`);
    assertEquals(run.committed, 0);
    assert(run.aborted);
    assertMatch(
      run.logs.join("\n"),
      /broken: Cannot store change 1: the server acknowledged change 1 with version 2, not 1/,
    );
  } finally {
    server.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("a server that NACKs: the node stops at once, without retrying", async () => {
  const server = badServer(() => encodeVersionPacket(PacketType.Nack, 0));
  const root = Deno.makeTempDirSync({ prefix: "socket-nack-" });
  try {
    const run = await runWorkload(root, `socket:127.0.0.1:${server.port}`);
    assertEquals(run.committed, 0);
    assertMatch(
      run.logs.join("\n"),
      /the server refused change 1 \(NACK; its backup is at version 0\)/,
    );
    assert(!/reconnect/.test(run.logs.join("\n")), run.logs.join("\n"));
  } finally {
    server.close();
    Deno.removeSync(root, { recursive: true });
  }
});

/** Mounts a tmpfs of `kib` KiB at `dir`; `false` where this machine does not allow it. */
function mountTmpfs(dir: string, kib: number): boolean {
  Deno.mkdirSync(dir, { recursive: true });
  const { success } = new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${kib}k`, "tmpfs", dir],
    stderr: "null",
  }).outputSync();
  return success;
}

const canMount = (() => {
  const probe = Deno.makeTempDirSync({ prefix: "tmpfs-probe-" });
  const ok = mountTmpfs(probe, 64);
  if (ok) new Deno.Command("umount", { args: [probe] }).outputSync();
  Deno.removeSync(probe, { recursive: true });
  return ok;
})();

Deno.test({
  name: "a server whose disk is full NACKs: the node stops cleanly, the backup restores",
  ignore: !canMount,
  fn: async () => {
    const root = Deno.makeTempDirSync({ prefix: "socket-full-" });
    const disk = `${root}/disk`;
    assert(mountTmpfs(disk, 96));
    try {
      const backupDir = `${disk}/served`;
      const server = startServer(backupDir);
      const dir = `${root}/node`;
      Deno.mkdirSync(dir);
      writeLockFile(dir, { backend_url: server.url, ...PATIENCE });
      const lightningd = FakeLightningd.spawn({ lightningDir: dir });
      let committed = 0;
      try {
        await lightningd.getmanifest();
        assertEquals(await lightningd.transaction(SCHEMA), "committed");
        committed++;
        // Notes that do not compress, so the disk fills after a few.
        for (let i = 0; i < 200; i++) {
          const text = Array.from({ length: 2000 }, () => Math.random().toString(36)[2]).join("");
          if (
            await lightningd.transaction([`INSERT INTO notes (note) VALUES ('${text}')`]) !==
              "committed"
          ) break;
          committed++;
        }
      } finally {
        await lightningd.kill().catch(() => {});
      }
      assert(lightningd.aborted, "the node stopped");
      assert(committed > 2 && committed < 200, `${committed} committed`);
      const logs = lightningd.logs.map((l) => l.message).join("\n");
      assertMatch(logs, /the server refused change \d+ \(NACK; its backup is at version \d+\)/);
      assertMatch(server.logs.join("\n"), /cannot store it: .*No space left on device/);
      await server.server.close();
      const reader = new FileBackupReader(`file://${backupDir}`, backupDir);
      assertEquals(reader.describe().records, committed);
      restoreBackup(reader, `${root}/restored.sqlite3`);
      assertEquals(
        dumpDatabase(`${root}/restored.sqlite3`),
        dumpDatabase(`${dir}/lightningd.sqlite3`),
      );
    } finally {
      new Deno.Command("umount", { args: [disk] }).outputSync();
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test("no server at start: getmanifest is answered first, the first write gives up", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-down-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  // Reconnects 0.5, 0.75 and 1.1 s apart: the plugin has long read getmanifest by the last.
  writeLockFile(dir, {
    backend_url: `socket:127.0.0.1:${port}`,
    ...PATIENCE,
    socket_retry_delay_s: 0.5,
  });
  const lightningd = FakeLightningd.spawn({ lightningDir: dir });
  try {
    await lightningd.getmanifest();
    assertEquals(await lightningd.transaction(SCHEMA), "aborted");
    // The manifest went out before the plugin gave up connecting: it did not wait to connect.
    const manifest = lightningd.received.findIndex((m) => m.id !== undefined && !m.method);
    const givingUp = lightningd.received.findIndex((m) =>
      /giving up/.test(String((m.params as { message?: string })?.message))
    );
    assert(manifest >= 0 && givingUp > manifest, `manifest ${manifest}, giving up ${givingUp}`);
    const logs = lightningd.logs.map((l) => `${l.level}: ${l.message}`).join("\n");
    assertMatch(
      logs,
      /broken: giving up: connecting to 127\.0\.0\.1:\d+ failed, and 3 reconnects over [\d.]+ s did not help \(connecting to 127\.0\.0\.1:\d+: .*refused.*: nothing accepts connections there: check that the server runs/,
    );
    assertMatch(logs, /broken: Cannot store change 1: connecting to/);
  } finally {
    await lightningd.kill().catch(() => {});
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("a large change over a slow uplink gets time for its bytes, not cut off on every try", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-slow-uplink-" });
  const server = startServer(`${root}/served`);
  // 512 KiB a second: the change's bytes take about a second, past the 300 ms timeout.
  const proxy = new FaultProxy(server.server.port, undefined, false, 512 * 1024);
  const backend = await SocketBackend.connect(`socket:127.0.0.1:${proxy.port}`, {
    policy: { ...DEFAULT_RETRY_POLICY, timeoutMs: 300, retries: 0 },
  });
  try {
    const random = prng(7);
    const hex = Array.from(
      { length: 512 * 1024 },
      () => Math.floor(random() * 256).toString(16).padStart(2, "0"),
    ).join("");
    await backend.append({ version: 1, statements: [`INSERT INTO t VALUES (x'${hex}')`] });
    assertEquals(backend.state().version, 1);
  } finally {
    backend.close();
    await proxy.close();
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});
