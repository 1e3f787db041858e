/**
 * The process the compaction crash trials kill (tests/compact_crash_test.ts): it appends
 * recorded changes to a file backup as the plugin does, starts a compaction in a worker at a
 * chosen change, and keeps appending while the compaction runs. After each append returns
 * (the plugin would answer `continue` then) it prints `acked <version>`.
 *
 * Usage: `deno run -A compact_child.ts <dir> <from> <to> <compact-at> <segment-bytes> [idle]`;
 * with `idle` it waits for the compaction before its next append, as a node with nothing
 * to write (the writer then trims its live log). The crash seam (lib/fs/step_seam.ts) kills
 * it where CLN_BACKUP_SEAM says.
 *
 * @module
 */
import { FileBackend } from "../../lib/backends/file/writer.ts";
import { Compactor } from "../../lib/compact/compactor.ts";
import { DEFAULT_POLICY } from "../../lib/compact/policy.ts";
import { recordedChanges } from "./cli_testing.ts";
import { SCENARIOS } from "./fixtures.ts";

const [dir, from, to, compactAt, segmentBytes, idle] = Deno.args;
const changes = recordedChanges(SCENARIOS);
const encoder = new TextEncoder();
const say = (line: string) => Deno.stdout.writeSync(encoder.encode(`${line}\n`));

const writer = FileBackend.open(`file://${dir}`, dir, { segmentBytes: Number(segmentBytes) });
const compactor = new Compactor(writer, () => DEFAULT_POLICY);
let compaction: Promise<unknown> | undefined;
for (let i = Number(from); i < Number(to); i++) {
  if (i === Number(compactAt)) {
    compaction = compactor.compact().then(
      (result) => say(`compacted ${JSON.stringify(result)}`),
      (error) => say(`failed ${error.message}`),
    );
    if (idle === "idle") await compaction;
  }
  await writer.append(changes[i]);
  say(`acked ${changes[i].version}`);
  // Let the worker's messages in between appends, as between hooks.
  await new Promise((resolve) => setTimeout(resolve, 0));
}
await compaction;
writer.close();
