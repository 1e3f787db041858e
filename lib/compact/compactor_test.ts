import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { restoredDump } from "../../tests/support/restored.ts";
import { dumpDatabase } from "../../tests/support/dump.ts";
import { dumpAt } from "../../tests/support/node_at.ts";
import { loadFixture, SCENARIOS } from "../../tests/support/fixtures.ts";
import { recordedChanges } from "../../tests/support/cli_testing.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { readLayout } from "../format/layout.ts";
import { restoreBackup } from "../backup/restore.ts";
import { makeEncryptedBackup } from "../../tests/support/encrypted.ts";
import { type CompactionThread, Compactor } from "./compactor.ts";
import { type CompactionPolicy, DEFAULT_POLICY } from "./policy.ts";
import { RETRY_AFTER_FAILURE_MS, RetryGate } from "./retry_gate.ts";
import { limitTarget } from "./target_limit.ts";

const CHANGES = recordedChanges(SCENARIOS);
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

function withBackup(test: (writer: FileBackend, dir: string) => Promise<void>) {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compactor-" });
    createFileBackup(`${dir}/backup`);
    const writer = FileBackend.open(`file://${dir}/backup`, `${dir}/backup`, {
      segmentBytes: 64 * 1024,
    });
    try {
      await test(writer, dir);
    } finally {
      writer.close();
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

Deno.test(
  "compactor: a worker compacts while appends go on; a second call joins; restore equals",
  withBackup(async (writer, dir) => {
    for (const change of CHANGES.slice(0, 300)) await writer.append(change);
    const compactor = new Compactor(writer, () => DEFAULT_POLICY);
    const held = () => new FileBackupReader(writer.url, writer.dir).heldStats();
    const before = held();
    const running = compactor.compact();
    assert(compactor.compact() === running, "a second call joins the running compaction");
    assertEquals(compactor.status().running?.target, CHANGES[298].version);
    let during = 0;
    let next = 300;
    while (compactor.running && next < CHANGES.length) {
      await writer.append(CHANGES[next++]);
      during++;
      await tick();
    }
    const result = await running;
    assert(during > 0, "appends overlapped the compaction");
    // The sizes come from the writer's counts, and equal what a reader counts.
    assertEquals([result.before, result.after], [before, held()]);
    assertEquals(result.base_version, CHANGES[298].version);
    for (const change of CHANGES.slice(next)) await writer.append(change);
    assertEquals(compactor.status().last, { ok: true, ...result });
    assertEquals(readLayout(writer.dir).bases.map((b) => b.version), [CHANGES[298].version]);
    assertEquals(restoredDump(writer.url, dir), dumpAt(CHANGES, CHANGES.at(-1)!.version));
    const described = new FileBackupReader(writer.url, writer.dir).describe();
    assertEquals(writer.state().bytes, described.bytes);
  }),
);

Deno.test(
  "compactor: starts by itself when the policy says, and says when it is next due",
  withBackup(async (writer) => {
    const policy: CompactionPolicy = { ...DEFAULT_POLICY, minBytes: 200 * 1024 };
    const compactor = new Compactor(writer, () => policy);
    const errors: Error[] = [];
    let started = 0;
    for (const change of CHANGES) {
      await writer.append(change);
      const compaction = compactor.maybeCompact();
      if (compaction) {
        started++;
        compaction.catch((error) => errors.push(error));
      }
      await tick();
    }
    // On a loaded machine the changes may outrun the last compaction: one is due again then.
    for (let more; (more = compactor.maybeCompact()) !== undefined || compactor.running;) {
      more?.catch((error) => errors.push(error));
      await tick();
    }
    assertEquals(errors, []);
    assert(started >= 1, "an automatic compaction started");
    const status = compactor.status();
    assertEquals(
      status.next_due_at_bytes,
      Math.max(policy.minBytes, writer.compactionSizes().baseBytes),
    );
    assert(status.sealed_log_bytes! < status.next_due_at_bytes!);
    assert(status.last?.ok);
    policy.auto = false;
    assertEquals(compactor.status().next_due_at_bytes, null);
  }),
);

Deno.test(
  "compactor: the logs an async copy still lacks do not make the policy due again at once",
  withBackup(async (writer) => {
    // Any sealed log after the newest base makes a compaction due; a copy lags 150 changes.
    const policy: CompactionPolicy = { ...DEFAULT_POLICY, minBytes: 0, ratioPercent: 1 };
    const limited = limitTarget(writer, () => writer.state().version - 150);
    const compactor = new Compactor(limited, () => policy);
    for (const change of CHANGES.slice(0, 400)) await writer.append(change);
    assertEquals(compactor.due(), true);
    const result = await compactor.compact();
    assertEquals(result.base_version, CHANGES[399].version - 150);
    assert(writer.compactionSizes().sealedLogBytes > 0, "the logs the copy lacks stay");
    // They made it due again after every change, each compaction folding little or nothing.
    assertEquals(compactor.due(), false);
    let next = 400;
    while (!compactor.due()) await writer.append(CHANGES[next++]);
    const again = await compactor.compact();
    assert(again.base_version! > result.base_version!, "due once it can fold a sealed log");
  }),
);

Deno.test(
  "compactor: the logs kept for older bases (point in time) do not make the policy due again",
  withBackup(async (writer) => {
    // Any sealed log after the newest base makes a compaction due.
    const policy: CompactionPolicy = { ...DEFAULT_POLICY, minBytes: 0, ratioPercent: 1, retain: 3 };
    const compactor = new Compactor(writer, () => policy);
    for (const change of CHANGES.slice(0, 200)) await writer.append(change);
    await compactor.compact();
    for (const change of CHANGES.slice(200, 400)) await writer.append(change);
    assertEquals(compactor.due(), true);
    await compactor.compact();
    assertEquals(readLayout(writer.dir).bases.length, 2);
    // The sealed logs left are the older base's: compacting again would only make a base a
    // change or two above this one, and drop the older base's history sooner.
    assert(readLayout(writer.dir).logs.length > 2, "the older base keeps its logs");
    assertEquals(compactor.due(), false);
    assertEquals(compactor.status().sealed_log_bytes, 0);
    let next = 400;
    while (!compactor.due()) await writer.append(CHANGES[next++]);
    assert(readLayout(writer.dir).bases.length === 2, "due only once a log after it is sealed");
  }),
);

Deno.test(
  "compactor: a failed compaction rejects, is shown, and leaves the writer appending",
  withBackup(async (writer) => {
    for (const change of CHANGES.slice(0, 50)) await writer.append(change);
    const failing: CompactionThread = {
      run: (_request, onMessage) =>
        queueMicrotask(() => onMessage({ kind: "failed", message: "Cannot compact backup: disk" })),
      stop: () => {},
    };
    const compactor = new Compactor(writer, () => DEFAULT_POLICY, () => failing);
    await assertRejects(() => compactor.compact(), /^Cannot compact backup: disk$/);
    assertEquals(compactor.status().last, { ok: false, error: "Cannot compact backup: disk" });
    assertEquals(compactor.running, false);
    await writer.append(CHANGES[50]);
    assertEquals(writer.state().version, CHANGES[50].version);
  }),
);

Deno.test(
  "compactor: after a failure, automatic compaction waits; a request tries at once",
  withBackup(async (writer) => {
    for (const change of CHANGES.slice(0, 300)) await writer.append(change);
    let runs = 0;
    const failing: CompactionThread = {
      run: (_request, onMessage) => {
        runs++;
        queueMicrotask(() => onMessage({ kind: "failed", message: "Cannot compact backup: disk" }));
      },
      stop: () => {},
    };
    let now = 0;
    const policy = { ...DEFAULT_POLICY, minBytes: 0, ratioPercent: 0 };
    const compactor = new Compactor(writer, () => policy, () => failing, new RetryGate(() => now));
    assertEquals(compactor.due(), true);
    await assertRejects(() => compactor.maybeCompact()!, /disk/);
    now += RETRY_AFTER_FAILURE_MS - 1;
    assertEquals([compactor.due(), compactor.maybeCompact(), runs], [false, undefined, 1]);
    await assertRejects(() => compactor.compact(), /disk/);
    assertEquals(runs, 2);
    now += RETRY_AFTER_FAILURE_MS;
    assertEquals(compactor.due(), true);
  }),
);

Deno.test("compactor: nothing on top of a base is nothing to fold, answered with the sizes, not as a failure", async () => {
  const dir = Deno.makeTempDirSync();
  createFileBackup(`${dir}/backup`);
  const writer = FileBackend.open(`file://${dir}/backup`, `${dir}/backup`);
  try {
    const compactor = new Compactor(writer, () => DEFAULT_POLICY);
    const result = await compactor.compact();
    const held = writer.heldStats();
    assertEquals(result, {
      before: held,
      after: held,
      base_version: null,
      versions_folded: 0,
      bytes_freed: 0,
      seconds: 0,
    });
    assertEquals(compactor.status().last, { ok: true, ...result });
  } finally {
    writer.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compactor: a backup holding only a base has nothing to fold and still restores", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const source = `${dir}/node.sqlite3`;
    Deno.copyFileSync(loadFixture("fresh-start").database, source);
    createFileBackup(`${dir}/backup`, { version: 11, path: source });
    const writer = FileBackend.open(`file://${dir}/backup`, `${dir}/backup`);
    try {
      const compactor = new Compactor(writer, () => DEFAULT_POLICY);
      const result = await compactor.compact();
      assertEquals([result.base_version, result.versions_folded], [null, 0]);
      assertEquals(compactor.running, false);
      assertEquals(restoredDump(writer.url, dir), dumpDatabase(source));
    } finally {
      writer.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test(
  "compactor: a rewind while a compaction runs drops only the newest change, above its target",
  withBackup(async (writer, dir) => {
    for (const change of CHANGES.slice(0, 300)) await writer.append(change);
    const compactor = new Compactor(writer, () => DEFAULT_POLICY);
    const running = compactor.compact();
    // The node stopped before committing change 300, and sends it again on its restart.
    await writer.rewind();
    await writer.append(CHANGES[299]);
    const result = await running;
    assertEquals(result.base_version, CHANGES[298].version);
    for (const change of CHANGES.slice(300)) await writer.append(change);
    assertEquals(restoredDump(writer.url, dir), dumpAt(CHANGES, CHANGES.at(-1)!.version));
  }),
);

Deno.test("compactor: stopping the plugin mid-compaction settles the call; the next open cleans up", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compactor-" });
  const url = `file://${dir}/backup`;
  createFileBackup(`${dir}/backup`);
  try {
    const writer = FileBackend.open(url, `${dir}/backup`, { segmentBytes: 64 * 1024 });
    for (const change of CHANGES.slice(0, 300)) await writer.append(change);
    const compactor = new Compactor(writer, () => DEFAULT_POLICY);
    const running = compactor.compact();
    compactor.stop();
    await assertRejects(() => running, /the plugin is stopping/);
    assertEquals(compactor.running, false);
    writer.close();
    const reopened = FileBackend.open(url, `${dir}/backup`);
    try {
      assertEquals(readLayout(`${dir}/backup`).temporaries, []);
      assertEquals(reopened.state().version, CHANGES[299].version);
      assertEquals(restoredDump(reopened.url, dir), dumpAt(CHANGES, CHANGES[299].version));
    } finally {
      reopened.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compactor: an idle node's live log holding every change is trimmed to the newest", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compactor-" });
  const url = `file://${dir}/backup`;
  const path = `${dir}/backup`;
  createFileBackup(path);
  let writer = FileBackend.open(url, path);
  try {
    for (const change of CHANGES.slice(0, 300)) await writer.append(change);
    const target = CHANGES[298].version;
    const before = writer.state().bytes;
    // No change comes while it runs, nor after.
    const result = await new Compactor(writer, () => DEFAULT_POLICY).compact();
    assertEquals(result.base_version, target);
    // All but the changes from the base's version on left the one log.
    const layout = readLayout(path);
    assertEquals(layout.logs.length, 1);
    assert(writer.state().records <= 3, `${writer.state().records} records left in the log`);
    const logBytes = Deno.statSync(layout.logs[0].path).size;
    assert(logBytes < before / 10, `the log keeps ${logBytes} bytes of ${before}`);
    // The base, and the changes the log keeps.
    assertEquals(result.after, new FileBackupReader(url, path).heldStats());
    assertEquals(result.after.version_count, 1 + writer.state().records);
    assertEquals(restoredDump(url, dir), dumpAt(CHANGES, CHANGES[299].version));
    // The writer's view equals a reopen's, and the one rewind is still possible.
    const state = writer.state();
    writer.close();
    writer = FileBackend.open(url, path);
    assertEquals(writer.state(), state);
    assertEquals(state.rewindVersion, target);
    await writer.rewind();
    assertEquals(restoredDump(url, dir), dumpAt(CHANGES, target));
    for (const change of CHANGES.slice(299)) await writer.append(change);
    assertEquals(restoredDump(url, dir), dumpAt(CHANGES, CHANGES.at(-1)!.version));
  } finally {
    writer.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compactor: a live log's trim writes nothing through a symlink left at its temporary name", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compactor-" });
  const path = `${dir}/backup`;
  createFileBackup(path);
  const writer = FileBackend.open(`file://${path}`, path);
  try {
    for (const change of CHANGES.slice(0, 300)) await writer.append(change);
    // The backup directory is the plugin's user's; compact may run as root beside it.
    Deno.writeTextFileSync(`${dir}/shadow`, "root:x:0:0");
    Deno.symlinkSync(`${dir}/shadow`, `${readLayout(path).logs[0].path}.tmp`);
    await new Compactor(writer, () => DEFAULT_POLICY).compact();
    assertEquals(Deno.readTextFileSync(`${dir}/shadow`), "root:x:0:0");
    assert(writer.state().records <= 3, "the live log is trimmed, as a file of its own");
    assertEquals(restoredDump(writer.url, dir), dumpAt(CHANGES, CHANGES[299].version));
  } finally {
    writer.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compactor: an encrypted live log is kept whole (records are sealed for their offsets), as the README says", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-compactor-" });
  const url = `file://${dir}/backup`;
  const path = `${dir}/backup`;
  const key = await makeEncryptedBackup(path);
  const writer = FileBackend.open(url, path, { key });
  try {
    for (const change of CHANGES.slice(0, 300)) await writer.append(change);
    const log = readLayout(path).logs[0].path;
    const before = Deno.readFileSync(log);
    const result = await new Compactor(writer, () => DEFAULT_POLICY).compact();
    assertEquals(result.base_version, CHANGES[298].version);
    assertEquals(result.bytes_freed, 0);
    assert(result.after.backupsize > result.before.backupsize);
    assertEquals(Deno.readFileSync(log), before);
    const reader = new FileBackupReader(url, path, { key });
    const target = `${dir}/restored.sqlite3`;
    restoreBackup(reader, target);
    assertEquals(dumpDatabase(target), dumpAt(CHANGES, CHANGES[299].version));
  } finally {
    writer.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
