/**
 * Compaction in the running plugin, driven by the fake lightningd over the recorded runs:
 * `backup-compact` requested at many points while lightningd keeps sending hooks (every hook
 * answered, the compaction overlapping them), automatic compaction by policy, the dynamic
 * options, and each restore equal to the node's database.
 */
import { restoredDump } from "./support/restored.ts";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { DATABASE_NAME, FakeLightningd } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { readLayout } from "../lib/format/layout.ts";
import { activityWrites, compactWhileWriting } from "./support/compact_while_writing.ts";

/** Small segments, so the recorded runs roll and compactions have sealed logs to delete. */
const ENV = { CLN_BACKUP_TEST_SEGMENT_BYTES: String(32 * 1024) };

interface Node {
  dir: string;
  url: string;
}

function newNode(): Node {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compaction-" });
  const url = `file://${dir}/backup`;
  createFileBackup(`${dir}/backup`);
  writeLockFile(dir, { backend_url: url });
  return { dir, url };
}

function spawn(node: Node): FakeLightningd {
  const lightningd = FakeLightningd.spawn({ lightningDir: node.dir, env: ENV });
  lightningd.volatileCommits();
  return lightningd;
}

/** fresh-start and restart as recorded. */
async function firstRuns(node: Node): Promise<void> {
  for (const name of ["fresh-start", "restart"] as const) {
    const lightningd = spawn(node);
    assertEquals(await lightningd.replay(loadFixture(name).raw), "committed");
    // The recorded stream ends with lightningd's shutdown.
    await lightningd.close();
  }
}

function status(answer: Record<string, unknown>): Record<string, unknown> {
  return answer.result as Record<string, unknown>;
}

Deno.test("compaction: backup-compact at many points while hooks flow; restore equals the node", async () => {
  const node = newNode();
  try {
    await firstRuns(node);
    const lightningd = spawn(node);
    await lightningd.getmanifest();
    await lightningd.init({ "backup-compact-auto": false });
    const { results, overlapped } = await compactWhileWriting(lightningd);
    // Twice in a row: the second call has nothing new to fold.
    const [a, b] = await Promise.all([
      lightningd.request("backup-compact", []),
      lightningd.request("backup-compact", []),
    ]);
    assertEquals(a.result, b.result, "a second call joins the running one");
    const again = status(await lightningd.request("backup-compact", []));
    assertEquals([again.base_version, again.versions_folded], [null, 0]);

    assert(results.length >= 5, `${results.length} compactions`);
    assert(overlapped > 0, "hooks were answered while a compaction ran");
    for (const result of results) {
      assertEquals(Object.keys(result).slice(0, 2), ["before", "after"]);
      assert(typeof result.seconds === "number");
    }
    const report = status(await lightningd.request("backup-status", []));
    const compaction = report.compaction as Record<string, unknown>;
    assertEquals(compaction.running, null);
    assertEquals((compaction.last as Record<string, unknown>).ok, true);
    await lightningd.stop();
    assert(readLayout(`${node.dir}/backup`).logs.length <= 3, "sealed logs were deleted");
    assertEquals(
      restoredDump(node.url, node.dir),
      dumpDatabase(loadFixture("activity").database),
    );
    assertEquals(dumpDatabase(`${node.dir}/${DATABASE_NAME}`), restoredDump(node.url, node.dir));
  } finally {
    Deno.removeSync(node.dir, { recursive: true });
  }
});

Deno.test("compaction: the plugin compacts by itself as its dynamic options say", async () => {
  const node = newNode();
  try {
    await firstRuns(node);
    const lightningd = spawn(node);
    await lightningd.getmanifest();
    const writes = activityWrites();
    for (const { version, writes: statements } of writes.slice(0, 3)) {
      assertEquals(await lightningd.dbWrite(version, statements), "committed");
    }
    await lightningd.init({ "backup-compact-min-mib": 0, "backup-compact-ratio": 50 });
    const bad = await lightningd.request("setconfig", {
      config: "backup-retain-snapshots",
      val: "0",
    });
    assertMatch(String((bad.error as Record<string, unknown>).message), /0 is below 1/);
    const set = await lightningd.request("setconfig", {
      config: "backup-retain-snapshots",
      val: "2",
    });
    assertEquals(set.result, {});
    /** Waits for a compaction the hooks started; returns the status after it. */
    const settled = async () => {
      let report = status(await lightningd.request("backup-status", []));
      while ((report.compaction as Record<string, unknown>).running !== null) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        report = status(await lightningd.request("backup-status", []));
      }
      return report;
    };
    for (const [i, { version, writes: statements }] of writes.slice(3).entries()) {
      assertEquals(await lightningd.dbWrite(version, statements), "committed", lightningd.aborted);
      // Now and then, let a compaction finish, so that the next one can start when it is
      // due however fast this machine compacts against how fast the hooks come.
      if (i % 50 === 49) await settled();
    }
    let report = await settled();
    const compaction = report.compaction as Record<string, unknown>;
    assertEquals((compaction.last as Record<string, unknown>)?.ok, true);
    assertEquals((report.options as Record<string, unknown>)["backup-retain-snapshots"], 2);
    const bases = readLayout(`${node.dir}/backup`).bases;
    assert(bases.length === 2, `${bases.length} snapshots kept, not 2`);
    const logs = lightningd.logs.filter((l) => l.message.startsWith("compacted the backup"));
    assert(logs.length > 0, "no compaction by itself was logged");
    for (const log of logs) {
      assertMatch(log.message, /^compacted the backup by itself in [\d.]+ s: \d+ change/);
    }
    // Off: no compaction is due any more.
    await lightningd.request("setconfig", { config: "backup-compact-auto", val: "false" });
    report = status(await lightningd.request("backup-status", []));
    assertEquals((report.compaction as Record<string, unknown>).next_due_at_bytes, null);
    await lightningd.stop();
    assertEquals(restoredDump(node.url, node.dir), dumpDatabase(loadFixture("activity").database));
  } finally {
    Deno.removeSync(node.dir, { recursive: true });
  }
});

Deno.test("compaction: backup-compact on an idle node frees all but the newest change at once", async () => {
  const node = newNode();
  try {
    // Default segments: every change stays in the one live log.
    for (const name of ["fresh-start", "restart"] as const) {
      const lightningd = FakeLightningd.spawn({ lightningDir: node.dir });
      assertEquals(await lightningd.replay(loadFixture(name).raw), "committed");
      await lightningd.close();
    }
    const lightningd = FakeLightningd.spawn({ lightningDir: node.dir });
    await lightningd.getmanifest();
    await lightningd.init({ "backup-compact-auto": false });
    // No hook comes: the compaction neither waits for one nor frees nothing.
    const result = status(await lightningd.request("backup-compact", []));
    const [before, after] = [result.before, result.after] as { backupsize: number }[];
    assert(after.backupsize < before.backupsize, `${after.backupsize} >= ${before.backupsize}`);
    const layout = readLayout(`${node.dir}/backup`);
    assertEquals([layout.bases.length, layout.logs.length], [1, 1]);
    const report = status(await lightningd.request("backup-status", []));
    assertEquals(report.records, 2, "the log keeps the base's change and the newest");
    await lightningd.stop();
    assertEquals(restoredDump(node.url, node.dir), dumpDatabase(`${node.dir}/${DATABASE_NAME}`));
  } finally {
    Deno.removeSync(node.dir, { recursive: true });
  }
});
