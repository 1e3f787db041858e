import { assertEquals } from "../../../tests/support/assert.ts";
import { recordedChanges } from "../../../tests/support/cli_testing.ts";
import { SCENARIOS } from "../../../tests/support/fixtures.ts";
import type { BackupDescription } from "../../backends/backend.ts";
import { createFileBackup } from "../../backends/file/create.ts";
import { FileBackupReader } from "../../backends/file/reader.ts";
import { FileBackend } from "../../backends/file/writer.ts";
import { compactWithWriter } from "../../compact/compact.ts";
import { describeBackup } from "./describe_backup.ts";

/** A reader whose first describe fails as one does when a compaction lands inside it. */
class CompactedMidDescribe extends FileBackupReader {
  compaction: (() => void) | undefined;

  override describe(): BackupDescription {
    const compaction = this.compaction;
    this.compaction = undefined;
    if (compaction === undefined) return super.describe();
    compaction();
    throw new Deno.errors.NotFound(`No such file or directory: "${this.dir}/log-…"`);
  }
}

Deno.test("doctor's describe of a file backup the plugin compacts meanwhile describes it again", async () => {
  const dir = Deno.makeTempDirSync();
  const all = recordedChanges(SCENARIOS);
  const path = `${dir}/backup`;
  const url = `file://${path}`;
  createFileBackup(path);
  const backend = FileBackend.open(url, path, { segmentBytes: 16 * 1024 });
  try {
    for (const change of all.slice(0, 300)) await backend.append(change);
    const reader = new CompactedMidDescribe(url, path);
    reader.compaction = () =>
      compactWithWriter(backend, { target: backend.compactionTarget()!, retain: 1 });
    const description = describeBackup(url, () => reader);
    assertEquals(reader.compaction, undefined, "the compaction landed mid-describe");
    assertEquals(description.lastVersion, all[299].version);
    assertEquals(description.snapshots.length, 1);
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
