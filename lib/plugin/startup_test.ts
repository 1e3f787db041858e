import { assert, assertMatch } from "../../tests/support/assert.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { writeLockFile } from "../backup/lock_file.ts";
import { recordedChanges } from "../cli/testing.ts";
import { readChain } from "../format/chain.ts";
import { openAtStart } from "./startup.ts";

Deno.test("start-up: a missing log is named in the refusal, with no offset to invent", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const url = `file://${dir}/backup`;
    createFileBackup(`${dir}/backup`);
    const writer = FileBackend.open(url, `${dir}/backup`, { segmentBytes: 4096 });
    const changes = recordedChanges(["fresh-start", "restart", "activity"]).slice(0, 80);
    for (const change of changes) await writer.append(change);
    writer.close();
    const logs = readChain(`${dir}/backup`).logs;
    assert(logs.length > 2, `${logs.length} logs`);
    Deno.removeSync(logs[1].path);
    writeLockFile(dir, { backend_url: url });
    const startup = await openAtStart(dir);
    assert("error" in startup.backend);
    assertMatch(
      startup.backend.error,
      /is damaged: a log segment is missing at ".*log-0+2\.clnb", which no crash explains/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
