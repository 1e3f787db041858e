import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/support/assert.ts";
import { restoredDump } from "../../tests/support/restored.ts";
import { dumpAt } from "../../tests/support/node_at.ts";
import { SCENARIOS } from "../../tests/support/fixtures.ts";
import { recordedChanges } from "../../tests/support/cli_testing.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { MultiBackend } from "../backends/multi/backend.ts";
import { AsyncCopy, type AsyncCopyOptions } from "../backends/multi/async_copy.ts";
import { WithAsyncCopies } from "../backends/multi/with_async_copies.ts";
import type { MultiCompactionResult } from "../backends/multi/compaction.ts";
import { readLayout } from "../format/layout.ts";
import { DEFAULT_POLICY } from "../compact/policy.ts";
import type { DestinationCompactionStatus } from "../compact/compactor.ts";
import { compactionFor } from "./compaction_for.ts";

const CHANGES = recordedChanges(SCENARIOS);

function fileBackend(root: string, name: string, syncOnClose = false): FileBackend {
  const url = `file://${root}/${name}`;
  return FileBackend.open(url, `${root}/${name}`, { segmentBytes: 64 * 1024, syncOnClose });
}

Deno.test("several file mirrors: each compacted in turn; a broken one held, a failing one reported, the others go on", async () => {
  const root = Deno.makeTempDirSync({ prefix: "multi-compaction-" });
  const names = ["a", "b", "c"];
  for (const name of names) createFileBackup(`${root}/${name}`);
  const [a, b, c] = names.map((name) => fileBackend(root, name));
  const multi = new MultiBackend([a, b, c], "degrade");
  const logs: string[] = [];
  try {
    for (const change of CHANGES.slice(0, 300)) await multi.append(change);
    // c fails on the next change and is dropped; b loses a sealed log, so its compaction fails.
    c.close();
    await multi.append(CHANGES[300]);
    Deno.removeSync(readLayout(`${root}/b`).logs[0].path);
    const service = compactionFor(multi, root, (_, message) => logs.push(message))!(
      () => DEFAULT_POLICY,
    );
    const running = service.compact() as Promise<MultiCompactionResult>;
    assert(service.compact() === running, "a second call joins the running one");
    let overlap = 0;
    let settled = false;
    running.finally(() => settled = true);
    while (!settled) {
      const destinations = service.status().destinations!;
      overlap = Math.max(overlap, destinations.filter((d) => d.running !== null).length);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const result = await running;
    assertEquals(overlap, 1, "one destination compacts at a time");
    assertEquals(result.base_version, CHANGES[299].version);
    assertEquals(result.destinations.map((d) => [d.url, d.result === null]), [
      [a.url, false],
      [b.url, true],
      [c.url, true],
    ]);
    const { destinations: _, ...primary } = result;
    assertEquals(result.destinations[0].result, primary);
    assertMatch(result.destinations[1].error!, /^Cannot compact backup: /);
    assertMatch(result.destinations[2].error!, /^not compacted: it is broken \(/);
    assertEquals(logs.length, 2);
    assertMatch(
      logs[0],
      /^Destination file:\/\/.*\/a compacted in [\d.]+ s: \d+ change\(s\) folded/,
    );
    assertMatch(logs[1], /^Destination file:\/\/.*\/b: Cannot compact backup: /);
    const status = service.status();
    const byUrl = (url: string) => status.destinations!.find((d) => d.url === url)!;
    assertEquals(status.last, byUrl(a.url).last, "the primary's status on top");
    assertEquals(byUrl(a.url).last?.ok, true);
    assertEquals(byUrl(b.url).last?.ok, false);
    assertMatch(byUrl(c.url).held!, /broken/);
    // The node goes on: a and b still take changes, and a restores equal.
    for (const change of CHANGES.slice(301)) await multi.append(change);
    assertEquals(restoredDump(a.url, root), dumpAt(CHANGES, CHANGES.at(-1)!.version));
    assertEquals(readLayout(`${root}/a`).bases.length, 1);
  } finally {
    // c is closed already.
    a.close();
    b.close();
    Deno.removeSync(root, { recursive: true });
  }
});

interface WithCopy {
  root: string;
  primary: FileBackend;
  copy: AsyncCopy;
  backend: WithAsyncCopies;
  /** What the copy logged. */
  logs: string[];
  /** Waits until the copy holds every change (at most 3 s), noting its states meanwhile. */
  caughtUp(states?: Set<string>): Promise<void>;
  /** Both restore equal to the recorded run. */
  restoresEqual(): void;
}

/** A file primary with an async file copy (made with `options` in `root`), for `fn`. */
function withCopy(
  options: (root: string) => Partial<AsyncCopyOptions>,
  fn: (t: WithCopy) => Promise<void>,
): () => Promise<void> {
  return async () => {
    const root = Deno.makeTempDirSync({ prefix: "multi-compaction-" });
    createFileBackup(`${root}/primary`);
    createFileBackup(`${root}/copy`);
    const primary = fileBackend(root, "primary");
    const logs: string[] = [];
    const copy = new AsyncCopy({
      url: `file://${root}/copy`,
      open: () => Promise.resolve(fileBackend(root, "copy", true)),
      readPrimary: () => Promise.resolve(new FileBackupReader(primary.url, `${root}/primary`)),
      primaryVersion: () => primary.state().version,
      log: (_, message) => logs.push(message),
      ...options(root),
    });
    const backend = new WithAsyncCopies(primary, [copy]);
    try {
      await fn({
        root,
        primary,
        copy,
        backend,
        logs,
        caughtUp: async (states = new Set()) => {
          for (let i = 0; i < 300 && copy.status().state !== "caught-up"; i++) {
            states.add(copy.status().state);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        },
        restoresEqual: () => {
          const truth = dumpAt(CHANGES, CHANGES.at(-1)!.version);
          assertEquals(restoredDump(primary.url, root), truth);
          assertEquals(restoredDump(copy.url, root), truth);
        },
      });
    } finally {
      backend.close();
      await copy.close();
      Deno.removeSync(root, { recursive: true });
    }
  };
}

Deno.test(
  "an async copy: the primary held until the copy is open, then both compacted",
  withCopy(() => ({}), async ({ root, primary, backend, caughtUp, restoresEqual }) => {
    const service = compactionFor(backend, root, () => {})!(() => DEFAULT_POLICY);
    // Before the node's first write, the copy is not open: what it will need stays.
    const held = (service.status().destinations as DestinationCompactionStatus[])[0].held;
    assertMatch(held!, /async copy .* is waiting: it may need every change the primary holds/);
    for (const change of CHANGES.slice(0, 200)) await primary.append(change);
    await assertRejects(() => service.compact(), /is waiting/);
    for (const change of CHANGES.slice(200, 300)) await backend.append(change);
    await caughtUp();
    const result = await service.compact() as MultiCompactionResult;
    assertEquals(result.destinations.map((d) => d.error), [null, null]);
    const base = CHANGES[298].version;
    assertEquals(result.destinations.map((d) => d.result?.base_version), [base, base]);
    for (const change of CHANGES.slice(300)) await backend.append(change);
    await caughtUp();
    restoresEqual();
  }),
);

Deno.test(
  "an async copy catching up from the primary while the primary compacts: nothing it lacks is folded",
  withCopy((root) => ({
    open: () => {
      // A copy slower than the primary, as a remote one is: it falls behind in each burst.
      const dest = fileBackend(root, "copy", true);
      const append = dest.append.bind(dest);
      dest.append = async (change) => {
        await new Promise((resolve) => setTimeout(resolve, 2));
        return append(change);
      };
      return Promise.resolve(dest);
    },
    // Its queue overflows at once: it catches up by reading the primary.
    queueLimit: 2,
  }), async ({ root, primary, copy, backend, logs, caughtUp, restoresEqual }) => {
    const service = compactionFor(backend, root, () => {})!(() => DEFAULT_POLICY);
    for (const change of CHANGES.slice(0, 100)) await backend.append(change);
    await caughtUp();
    const states = new Set<string>();
    let behind = 0;
    let next = 100;
    for (let round = 0; round < 3; round++) {
      // A burst first: the copy is behind, reading the primary, when the compaction starts.
      for (const change of CHANGES.slice(next, next += 60)) await backend.append(change);
      const copyAt = copy.status().version!;
      if (copyAt < primary.state().rewindVersion!) behind++;
      let done = false;
      const running = service.compact().finally(() => done = true);
      while (!done) {
        for (const change of CHANGES.slice(next, next += 4)) await backend.append(change);
        states.add(copy.status().state);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      const result = await running as MultiCompactionResult;
      assertEquals(result.destinations.map((d) => d.error), [null, null]);
      const base = result.destinations[0].result!.base_version;
      assert(base === null || base <= copyAt, `the primary folded to ${base}, past ${copyAt}`);
    }
    assert(behind > 0, "the copy was behind when the primary compacted");
    for (const change of CHANGES.slice(next)) await backend.append(change);
    await caughtUp(states);
    assert(!states.has("failing"), `the copy failed: ${logs.join("\n")}`);
    restoresEqual();
  }),
);

Deno.test(
  "an async copy that fails, then restarts: the primary keeps the change the copy drops at its next start",
  async () => {
    const root = Deno.makeTempDirSync({ prefix: "multi-compaction-" });
    createFileBackup(`${root}/primary`);
    createFileBackup(`${root}/copy`);
    /** One run of the plugin: the primary, and the copy, whose writes fail while `down`. */
    const run = () => {
      const primary = fileBackend(root, "primary");
      const logs: string[] = [];
      const state = { down: false };
      const copy = new AsyncCopy({
        url: `file://${root}/copy`,
        open: () => {
          if (state.down) return Promise.reject(new Error("the copy's disk is gone"));
          const dest = fileBackend(root, "copy", true);
          const append = dest.append.bind(dest);
          dest.append = (change) =>
            state.down ? Promise.reject(new Error("the copy's disk is gone")) : append(change);
          return Promise.resolve(dest);
        },
        readPrimary: () => Promise.resolve(new FileBackupReader(primary.url, `${root}/primary`)),
        primaryVersion: () => primary.state().version,
        log: (_, message) => logs.push(message),
        maxRetryMs: 20,
      });
      const backend = new WithAsyncCopies(primary, [copy]);
      const until = async (state: string) => {
        for (let i = 0; i < 300 && copy.status().state !== state; i++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assertEquals(copy.status().state, state, logs.join("\n"));
      };
      const close = async () => {
        primary.close();
        await copy.close();
      };
      return { primary, copy, backend, logs, state, until, close };
    };
    try {
      const first = run();
      for (const change of CHANGES.slice(0, 100)) await first.backend.append(change);
      await first.until("caught-up");
      // The copy fails at version 100; the node goes on, and the primary is compacted.
      first.state.down = true;
      for (const change of CHANGES.slice(100, 200)) await first.backend.append(change);
      await first.until("failing");
      const service = compactionFor(first.backend, root, () => {})!(() => DEFAULT_POLICY);
      const result = await service.compact() as MultiCompactionResult;
      assertEquals(result.destinations[0].error, null);
      await first.close();
      // The next start: the copy drops its last change, which the primary must still hold.
      const second = run();
      for (const change of CHANGES.slice(200)) await second.backend.append(change);
      await second.until("caught-up");
      await second.close();
      const truth = dumpAt(CHANGES, CHANGES.at(-1)!.version);
      assertEquals(restoredDump(`file://${root}/copy`, root), truth);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
);

/** The next test's copy: its syncs wait for `held`; `version` is what it synced last. */
const syncs = { held: Promise.resolve(), version: 0 };

Deno.test(
  "an async copy's appends not synced yet: the primary keeps them, which a power cut may take from the copy",
  withCopy((root) => ({
    open: () => {
      const dest = fileBackend(root, "copy", true);
      const flush = dest.flush.bind(dest);
      dest.flush = async () => {
        const version = dest.state().version;
        await syncs.held;
        await flush();
        syncs.version = version;
      };
      return Promise.resolve(dest);
    },
  }), async ({ root, primary, copy, backend, caughtUp, restoresEqual }) => {
    const service = compactionFor(backend, root, () => {})!(() => DEFAULT_POLICY);
    for (const change of CHANGES.slice(0, 100)) await backend.append(change);
    await caughtUp();
    assertEquals(syncs.version, CHANGES[99].version);
    // The copy's sync hangs: what it appends from here on is in the page cache alone.
    const held = Promise.withResolvers<void>();
    syncs.held = held.promise;
    for (const change of CHANGES.slice(100, 150)) await backend.append(change);
    for (let i = 0; i < 300 && copy.status().version !== CHANGES[149].version; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assertEquals(copy.status().version, CHANGES[149].version);
    for (const change of CHANGES.slice(150, 160)) await backend.append(change);
    const running = service.compact() as Promise<MultiCompactionResult>;
    const primaryDone = () => service.status().destinations![0].last !== null;
    for (let i = 0; i < 300 && !primaryDone(); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    held.resolve();
    const result = await running;
    const base = result.destinations[0].result!.base_version!;
    // A power cut now leaves the copy at its last sync, less the change its start drops.
    assert(base <= CHANGES[98].version, `the primary folded to ${base}, past the copy's sync`);
    for (const change of CHANGES.slice(160)) await backend.append(change);
    await caughtUp();
    assertEquals(primary.state().version, copy.status().version);
    restoresEqual();
  }),
);

/** The next test's copy: its syncs wait for `stuck` once set. */
const stuck = { syncs: Promise.resolve() };

Deno.test(
  "an async copy that stays behind: the file primary's status says the copy holds its sealed logs",
  withCopy((root) => ({
    open: () => {
      const dest = fileBackend(root, "copy", true);
      const flush = dest.flush.bind(dest);
      dest.flush = async () => {
        await stuck.syncs;
        await flush();
      };
      return Promise.resolve(dest);
    },
  }), async ({ root, primary, backend, caughtUp }) => {
    const service = compactionFor(backend, root, () => {})!(
      () => ({ ...DEFAULT_POLICY, minBytes: 0, ratioPercent: 1 }),
    );
    for (const change of CHANGES.slice(0, 100)) await backend.append(change);
    await caughtUp();
    // Its syncs hang from here: it resumes where it last synced, however far the node goes.
    const released = Promise.withResolvers<void>();
    stuck.syncs = released.promise;
    try {
      const logs = readLayout(`${root}/primary`).logs.length;
      let next = 100;
      while (readLayout(`${root}/primary`).logs.length < logs + 2) {
        await backend.append(CHANGES[next++]);
      }
      // Not compacted for those logs, and the status says why.
      assertEquals(service.due(), false);
      const status = service.status().destinations as DestinationCompactionStatus[];
      assertEquals(status[0].url, primary.url);
      assertMatch(status[0].held ?? "null", /async copy may resume from version \d+/);
    } finally {
      released.resolve();
      stuck.syncs = Promise.resolve();
    }
  }),
);
