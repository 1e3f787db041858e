import { assertEquals } from "../../../tests/support/assert.ts";
import { recordedChanges } from "../../../tests/support/cli_testing.ts";
import { SCENARIOS } from "../../../tests/support/fixtures.ts";
import { pluginBackup } from "../../../tests/support/compacting_backup.ts";
import type { BackupDescription } from "../../backends/backend.ts";
import { FileBackupReader } from "../../backends/file/reader.ts";
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
  const { backend, compact } = await pluginBackup(`${dir}/backup`, all.slice(0, 300));
  try {
    const reader = new CompactedMidDescribe(backend.url, backend.dir);
    reader.compaction = compact;
    const description = describeBackup(backend.url, () => reader);
    assertEquals(reader.compaction, undefined, "the compaction landed mid-describe");
    assertEquals(description.lastVersion, all[299].version);
    assertEquals(description.snapshots.length, 1);
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
