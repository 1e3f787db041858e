import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { SCENARIOS } from "../../../tests/support/fixtures.ts";
import { recordedChanges } from "../../../tests/support/cli_testing.ts";
import { createFileBackup } from "../file/create.ts";
import { FileBackend } from "../file/writer.ts";
import { readLayout } from "../../format/layout.ts";
import { Compactor } from "../../compact/compactor.ts";
import { type CompactionPolicy, DEFAULT_POLICY } from "../../compact/policy.ts";
import { RETRY_AFTER_FAILURE_MS, RetryGate } from "../../compact/retry_gate.ts";
import { MultiCompaction } from "./compaction.ts";

const CHANGES = recordedChanges(SCENARIOS);

Deno.test("MultiCompaction leaves a destination whose compaction failed to itself for a while; a request tries it at once", async () => {
  const root = Deno.makeTempDirSync({ prefix: "multi-compaction-" });
  const [a, b] = ["a", "b"].map((name) => {
    createFileBackup(`${root}/${name}`);
    return FileBackend.open(`file://${root}/${name}`, `${root}/${name}`, {
      segmentBytes: 64 * 1024,
    });
  });
  try {
    for (const change of CHANGES.slice(0, 300)) {
      await a.append(change);
      await b.append(change);
    }
    // b's compaction fails: a sealed log it needs is gone.
    Deno.removeSync(readLayout(`${root}/b`).logs[0].path);
    const due: CompactionPolicy = { ...DEFAULT_POLICY, minBytes: 0, ratioPercent: 1 };
    let now = 0;
    const compactor = (backend: FileBackend, policy: CompactionPolicy) =>
      new Compactor(backend, () => policy, undefined, new RetryGate(() => now));
    const members = [
      { url: a.url, async: false, service: compactor(a, DEFAULT_POLICY) },
      { url: b.url, async: false, service: compactor(b, due) },
    ];
    const failures: string[] = [];
    const multi = new MultiCompaction(
      members,
      (level, message) => level === "unusual" && failures.push(message),
    );
    await assertRejects(() => multi.maybeCompact()!, /file:\/\/.*\/b: .*/);
    assertEquals(failures.length, 1);
    now += RETRY_AFTER_FAILURE_MS - 1;
    assertEquals([multi.due(), multi.maybeCompact()], [false, undefined]);
    now += 1;
    assertEquals(multi.due(), true);
    await assertRejects(() => multi.maybeCompact()!);
    assertEquals(failures.length, 2);
    // A request compacts every destination, that one too.
    const result = await multi.compact();
    assertEquals(result.destinations.map((d) => d.error === null), [true, false]);
    assertEquals(failures.length, 3);
  } finally {
    a.close();
    b.close();
    Deno.removeSync(root, { recursive: true });
  }
});
