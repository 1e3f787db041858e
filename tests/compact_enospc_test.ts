/**
 * A compaction that runs out of disk fails cleanly: on a small tmpfs the compaction's
 * scratch database does not fit, so it fails with a message saying the backup is unchanged,
 * leaves nothing behind, and the writer keeps storing changes while space remains for them.
 * Needs root to mount a tmpfs; elsewhere it says so and skips.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { dumpAt } from "./support/node_at.ts";
import { SCENARIOS } from "./support/fixtures.ts";
import { recordedChanges } from "../lib/cli/testing.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { readLayout } from "../lib/format/layout.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { Compactor } from "../lib/compact/compactor.ts";
import { DEFAULT_POLICY } from "../lib/compact/policy.ts";

const CHANGES = recordedChanges(SCENARIOS);
const HELD_BACK = 20;

function run(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

function directorySize(dir: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isFile) total += Deno.statSync(`${dir}/${entry.name}`).size;
  }
  return total;
}

Deno.test("compaction out of disk fails cleanly; the writer keeps appending", async () => {
  const work = Deno.makeTempDirSync({ prefix: "cln-backup-enospc-" });
  const mount = `${work}/small`;
  Deno.mkdirSync(mount);
  try {
    // The backup of all but the last changes, built where space is plenty.
    const staging = `${work}/staging`;
    createFileBackup(staging);
    const builder = FileBackend.open(`file://${staging}`, staging, { segmentBytes: 64 * 1024 });
    for (const change of CHANGES.slice(0, -HELD_BACK)) await builder.append(change);
    builder.close();
    // Room for the backup and the last changes, not for a compaction's scratch database.
    const size = Math.ceil((directorySize(staging) + 160 * 1024) / 4096) * 4096;
    if (!run("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mount])) {
      console.log("skipped: cannot mount a tmpfs here (needs root and mount)");
      return;
    }
    const path = `${mount}/backup`;
    assert(run("cp", ["-a", staging, path]), "copy the backup onto the tmpfs");
    const url = `file://${path}`;
    const writer = FileBackend.open(url, path, { segmentBytes: 64 * 1024 });
    try {
      const compactor = new Compactor(writer, () => DEFAULT_POLICY);
      const compaction = compactor.compact();
      for (const change of CHANGES.slice(-HELD_BACK)) await writer.append(change);
      await assertRejects(
        () => compaction,
        /^Cannot compact backup: .*full.*the backup is unchanged/,
      );
      const last = compactor.status().last;
      assert(last && !last.ok);
      assertMatch(last.error, /building the base at version \d+ in ".*small\/backup"/);
      assertEquals(readLayout(path).temporaries, []);
      assertEquals(readLayout(path).bases, []);
      assertEquals(writer.state().version, CHANGES.at(-1)!.version);
    } finally {
      writer.close();
    }
    const restored = restoreBackup(new FileBackupReader(url, path), `${work}/restored.sqlite3`);
    assertEquals(dumpDatabase(restored.path), dumpAt(CHANGES, CHANGES.at(-1)!.version));
  } finally {
    run("umount", [mount]);
    Deno.removeSync(work, { recursive: true });
  }
});
