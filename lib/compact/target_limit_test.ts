import { assertEquals } from "../../tests/support/assert.ts";
import { restoredDump } from "../../tests/support/restored.ts";
import { dumpAt } from "../../tests/support/node_at.ts";
import { SCENARIOS } from "../../tests/support/fixtures.ts";
import { recordedChanges } from "../../tests/support/cli_testing.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { readLayout } from "../format/layout.ts";
import { Compactor } from "./compactor.ts";
import { DEFAULT_POLICY } from "./policy.ts";
import { limitTarget } from "./target_limit.ts";

const CHANGES = recordedChanges(SCENARIOS);

Deno.test("limitTarget: a compaction folds no further than the limit, and every change after it stays", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-limit-" });
  createFileBackup(`${dir}/backup`);
  const url = `file://${dir}/backup`;
  const writer = FileBackend.open(url, `${dir}/backup`, { segmentBytes: 64 * 1024 });
  try {
    for (const change of CHANGES.slice(0, 300)) await writer.append(change);
    let limit: number | undefined = CHANGES[150].version;
    const compactor = new Compactor(limitTarget(writer, () => limit), () => DEFAULT_POLICY);
    assertEquals((await compactor.compact()).base_version, CHANGES[150].version);
    // Every change after the limit is still there, from the limit on.
    assertEquals(
      restoredDump(url, dir, CHANGES[151].version),
      dumpAt(CHANGES, CHANGES[151].version),
    );
    // No limit: up to the writer's own target, the version before its newest change.
    limit = undefined;
    assertEquals((await compactor.compact()).base_version, CHANGES[298].version);
    assertEquals(readLayout(`${dir}/backup`).bases.map((b) => b.version), [CHANGES[298].version]);
    assertEquals(restoredDump(url, dir), dumpAt(CHANGES, CHANGES[299].version));
  } finally {
    writer.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
