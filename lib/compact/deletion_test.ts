import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { recordedChanges } from "../../tests/support/cli_testing.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { baseName, logName } from "../format/layout.ts";
import { readChain } from "../format/chain.ts";
import { compactWithWriter } from "./compact.ts";
import { DELETION_PLAN } from "./deletion.ts";

const CHANGES = recordedChanges(["fresh-start", "restart"]);

/** A backup of small logs with two bases (at 9 and 13) and the changes after them. */
async function build(path: string): Promise<void> {
  createFileBackup(path);
  const writer = FileBackend.open(`file://${path}`, path, { segmentBytes: 256 });
  try {
    for (const change of CHANGES) {
      await writer.append(change);
      if (change.version === 10 || change.version === 14) {
        compactWithWriter(writer, { target: change.version - 1, retain: 2 });
      }
    }
  } finally {
    writer.close();
  }
}

function names(path: string): string[] {
  return [...Deno.readDirSync(path)].map((e) => e.name).sort();
}

function open(path: string): void {
  FileBackend.open(`file://${path}`, path).close();
}

Deno.test("deletion: a plan an interrupted compaction left is finished at the next open", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup`;
  await build(path);
  const chain = readChain(path);
  const [older, newest] = chain.bases;
  // What a compaction keeping one base plans: the older base and the logs only it needs.
  const covered = chain.logs.filter((l) => l.number < newest.header.firstLog);
  const planned = [older, ...covered].map((s) => s.path.slice(path.length + 1));
  Deno.writeTextFileSync(`${path}/${DELETION_PLAN}`, JSON.stringify({ delete: planned }));
  const before = names(path);
  open(path);
  assertEquals(names(path), before.filter((n) => !planned.includes(n) && n !== DELETION_PLAN));
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("deletion: a plan that names segments the backup still needs deletes nothing", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup`;
  await build(path);
  const chain = readChain(path);
  const plan = `${path}/${DELETION_PLAN}`;
  const live = logName(chain.logs.at(-1)!.number);
  const [older, newest] = chain.bases.map((b) => baseName(b.number));
  // Another backup's plan (or an old copy's), copied in: it names every base, or the live log,
  // or a log the newest base continues in; the refusal names the first one needed.
  for (
    const [planned, needed] of [
      [[older, newest], older],
      [[older, live], live],
      [[logName(chain.bases[1].header.firstLog)], logName(chain.bases[1].header.firstLog)],
    ] as const
  ) {
    Deno.writeTextFileSync(plan, JSON.stringify({ delete: planned }));
    const before = names(path);
    assertEquals(
      assertThrows(() => open(path)).message,
      `Cannot open backup: a compaction plan that would delete "${needed}", which the ` +
        `backup still needs, at "${plan}": it was not written for these segments (copied in ` +
        `with another backup's files, or an old copy's): remove it, then open the backup again`,
    );
    assertEquals(names(path), before);
  }
  Deno.removeSync(plan);
  open(path);
  Deno.removeSync(dir, { recursive: true });
});
