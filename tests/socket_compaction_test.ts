/**
 * `backup-compact` on a `socket:` backup: the plugin sends COMPACT on a connection of its
 * own, our server compacts in a worker, and the node's hooks flow meanwhile over the
 * writer's connection, every one answered; the restore equals the node's database.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { compactWhileWriting } from "./support/compact_while_writing.ts";
import { loadFixture } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { startServer } from "./support/wire_server.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { BufferedOutput } from "./support/cli_testing.ts";
import { restore } from "../lib/cli/restore.ts";
import { SCHEMA, unusual } from "./support/plugin_session.ts";

Deno.test("remote compaction: backup-compact while hooks flow; every hook answered; restore equals the node", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-compaction-" });
  const server = startServer(`${root}/served`);
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  writeLockFile(dir, { backend_url: server.url });
  try {
    for (const name of ["fresh-start", "restart"] as const) {
      const lightningd = FakeLightningd.spawn({ lightningDir: dir });
      assertEquals(await lightningd.replay(loadFixture(name).raw), "committed");
      await lightningd.close();
    }
    const lightningd = FakeLightningd.spawn({ lightningDir: dir });
    try {
      await lightningd.getmanifest();
      await lightningd.init({});
      const { results, overlapped } = await compactWhileWriting(lightningd);
      assert(results.length >= 5, `${results.length} compactions`);
      assert(overlapped > 0, "hooks were answered while a compaction ran on the server");
      for (const result of results) {
        assertEquals(Object.keys(result).slice(0, 2), ["before", "after"]);
        assertEquals(typeof result.base_version, "number", JSON.stringify(result));
      }
      const report = (await lightningd.request("backup-status", [])).result as Record<
        string,
        Record<string, unknown>
      >;
      assertEquals(report.compaction.running, null);
      assertEquals((report.compaction.last as Record<string, unknown>).ok, true);
      assertEquals((await lightningd.stop()).code, 0);
    } finally {
      await lightningd.kill().catch(() => {});
    }
    assert(server.logs.some((l) => /: compacted in .* folded into base \d+/.test(l)));
    assertEquals(
      dumpDatabase(`${dir}/lightningd.sqlite3`),
      dumpDatabase(loadFixture("activity").database),
    );
    const output = new BufferedOutput();
    assertEquals(
      await restore([server.url, `${root}/restored.sqlite3`], output),
      0,
      output.transcript,
    );
    assertEquals(
      dumpDatabase(`${root}/restored.sqlite3`),
      dumpDatabase(`${dir}/lightningd.sqlite3`),
    );
  } finally {
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("remote compaction: the compaction options, which a server's backup ignores, are logged at init and refused by setconfig", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-compaction-options-" });
  const server = startServer(`${root}/served`);
  const dir = `${root}/node`;
  Deno.mkdirSync(dir);
  writeLockFile(dir, { backend_url: server.url });
  const lightningd = FakeLightningd.spawn({ lightningDir: dir });
  try {
    await lightningd.getmanifest();
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    // As lightningd sends them: every option with a default, set or not.
    await lightningd.init({
      "backup-compact-auto": true,
      "backup-compact-ratio": 100,
      "backup-compact-min-mib": 64,
      "backup-retain-snapshots": 3,
    });
    const ignored = 'the backup is on a server, which compacts it only when "lightning-cli ' +
      'backup-compact" asks, keeping one base';
    assertEquals(unusual(lightningd), [
      `Ignoring option "backup-retain-snapshots" (3): ${ignored}; remove it from lightningd's config`,
    ]);
    assertEquals(await lightningd.setconfig("backup-compact-auto", "false"), {
      // lightningd passes a refusal on with its double quotes made single (asEscapeFree).
      error: {
        code: -32602,
        message: `Cannot set option 'backup-compact-auto': ${ignored.replaceAll('"', "'")}`,
      },
    });
    // Back to its default it is as if unset: taken, so the config need not be edited first.
    assertEquals(await lightningd.setconfig("backup-retain-snapshots", "1"), { result: {} });
    assertEquals((await lightningd.stop()).code, 0);
  } finally {
    await lightningd.kill().catch(() => {});
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});
