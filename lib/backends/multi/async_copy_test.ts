import { assert, assertEquals, assertMatch } from "../../../tests/support/assert.ts";
import { AsyncCopy, type AsyncCopyOptions } from "./async_copy.ts";
import type { AsyncDestinationStatus, Backend, Change } from "../backend.ts";
import { createFileBackup } from "../file/create.ts";
import { FileBackupReader } from "../file/reader.ts";
import { openBackend } from "../open.ts";

const bump = (from: number) =>
  `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${from}`;
const change = (version: number): Change => ({
  version,
  statements: [`INSERT INTO notes VALUES (${version})`, bump(version - 1)],
});
const pragma = (version: number, on: boolean): Change => ({
  version,
  statements: [`PRAGMA foreign_keys = ${on ? "ON" : "OFF"}`],
});

/** A primary file backup, an empty copy beside it, and an AsyncCopy between them. */
function setUp(options: Partial<AsyncCopyOptions> = {}) {
  const root = Deno.makeTempDirSync({ prefix: "async-copy-" });
  createFileBackup(`${root}/primary`);
  const primaryUrl = `file://${root}/primary`;
  const copyUrl = `file://${root}/copy`;
  const primary = openBackend(primaryUrl);
  const logs: string[] = [];
  /** Syncs of the copy, which writes without a sync per change, as the plugin opens it. */
  const flushes = { count: 0 };
  const copy = new AsyncCopy({
    url: copyUrl,
    open: () => {
      const backend = openBackend(copyUrl, { syncOnClose: true });
      const flush = backend.flush!.bind(backend);
      backend.flush = () => (flushes.count++, flush());
      return Promise.resolve(backend);
    },
    readPrimary: () => Promise.resolve(new FileBackupReader(primaryUrl, `${root}/primary`)),
    primaryVersion: () => primary.state().version,
    log: (_, message) => logs.push(message),
    maxRetryMs: 20,
    ...options,
  });
  const store = async (c: Change) => {
    await primary.append(c);
    copy.feed(c);
  };
  const changes = (url: string) =>
    [...new FileBackupReader(url, url.slice("file://".length)).entries()]
      .filter((e) => e.kind === "change");
  const until = async (wanted: (s: AsyncDestinationStatus) => boolean) => {
    for (let i = 0; i < 400; i++) {
      if (wanted(copy.status())) return copy.status();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`never got there: ${JSON.stringify(copy.status())}`);
  };
  const done = async () => {
    await copy.close();
    primary.close();
    Deno.removeSync(root, { recursive: true });
  };
  return {
    flushes,
    root,
    primary: primary as Backend,
    primaryUrl,
    copyUrl,
    copy,
    store,
    changes,
    until,
    logs,
    done,
  };
}

Deno.test("AsyncCopy waits for the first change, then copies each one in order", async () => {
  const t = setUp();
  try {
    createFileBackup(`${t.root}/copy`);
    assertEquals(t.copy.status().state, "waiting");
    for (let v = 1; v <= 5; v++) await t.store(change(v));
    await t.store(pragma(5, false));
    await t.store(pragma(5, true));
    await t.store(change(6));
    const status = await t.until((s) => s.state === "caught-up");
    assertEquals([status.version, status.lag_versions, status.lag_seconds], [6, 0, 0]);
    assert(t.flushes.count > 0);
    assertEquals(t.changes(t.copyUrl), t.changes(t.primaryUrl));
  } finally {
    await t.done();
  }
});

Deno.test("AsyncCopy shows caught-up only once what it copied is synced", async () => {
  const sync = Promise.withResolvers<void>();
  let syncing = false;
  const t = setUp({
    open: () => {
      const backend = openBackend(t.copyUrl, { syncOnClose: true });
      const flush = backend.flush!.bind(backend);
      let syncs = 0;
      // The first sync is the open's, of what the copy found.
      backend.flush = async () => {
        if (syncs++ > 0) {
          syncing = true;
          await sync.promise;
        }
        await flush();
      };
      return Promise.resolve(backend);
    },
  });
  try {
    createFileBackup(`${t.root}/copy`);
    for (let v = 1; v <= 5; v++) await t.store(change(v));
    for (let i = 0; i < 400 && !(syncing && t.copy.status().version === 5); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assertEquals(t.copy.status().version, 5);
    // Every change appended, none synced: a power cut may take them yet.
    assertEquals(t.copy.status().state, "behind");
    sync.resolve();
    const status = await t.until((s) => s.state === "caught-up");
    assertEquals([status.version, status.lag_versions], [5, 0]);
  } finally {
    sync.resolve();
    await t.done();
  }
});

Deno.test("AsyncCopy catches up from the primary once its queue overflowed", async () => {
  const t = setUp({ queueLimit: 3 });
  try {
    createFileBackup(`${t.root}/copy`);
    for (let v = 1; v <= 40; v++) await t.store(change(v));
    await t.until((s) => s.state === "caught-up" && s.version === 40);
    assertEquals(t.changes(t.copyUrl), t.changes(t.primaryUrl));
  } finally {
    await t.done();
  }
});

Deno.test("AsyncCopy: a missing destination fails without stopping anything, then catches up", async () => {
  const t = setUp();
  try {
    for (let v = 1; v <= 3; v++) await t.store(change(v));
    const failing = await t.until((s) => s.state === "failing");
    assertMatch(
      failing.error ?? "",
      /nothing at ".*\/copy": mount the disk it is on, or fix the URL/,
    );
    assertEquals([failing.version, failing.lag_versions], [null, null]);
    assertMatch(t.logs[0], /^Async destination file:.* failed, the node goes on/);
    createFileBackup(`${t.root}/copy`);
    await t.store(change(4));
    await t.until((s) => s.state === "caught-up" && s.version === 4);
    assertEquals(t.changes(t.copyUrl), t.changes(t.primaryUrl));
  } finally {
    await t.done();
  }
});

Deno.test("AsyncCopy: a destination down for hours says so again each hour, not only once", async () => {
  let clock = 0;
  const t = setUp({ now: () => clock });
  try {
    for (let v = 1; v <= 3; v++) await t.store(change(v));
    await t.until((s) => s.state === "failing");
    assertEquals(t.logs.length, 1, t.logs.join("\n"));
    // The primary keeps every change the copy lacks meanwhile: it grows, and the log says so.
    clock = 3_600_000;
    await t.until(() => t.logs.length === 2);
    assertMatch(
      t.logs[1],
      /^Async destination file:.* still fails after 1 h, the node goes on without it; the primary keeps every change it lacks and is not compacted past them, so it grows until the copy works again or is removed from async_urls: Cannot open backup: nothing at /,
    );
    clock = 3_600_000 + 1_800_000;
    await t.store(change(4));
    clock = 7_200_000;
    await t.until(() => t.logs.length === 3);
    assertMatch(t.logs[2], /still fails after 2 h/);
    createFileBackup(`${t.root}/copy`);
    await t.store(change(5));
    await t.until((s) => s.state === "caught-up");
    assertMatch(t.logs.at(-1)!, /works again/);
  } finally {
    await t.done();
  }
});

Deno.test("AsyncCopy: a failure of another kind in an outage is logged when it comes, not an hour later", async () => {
  const t = setUp({ now: () => 0 });
  const failures = () => t.logs.filter((line) => / fail/.test(line));
  try {
    await t.store(change(1));
    await t.until((s) => s.state === "failing");
    assertEquals(failures().length, 1, t.logs.join("\n"));
    // The disk comes back with another backup on it: no retry may ever copy to it.
    createFileBackup(`${t.root}/copy`);
    const other = openBackend(t.copyUrl);
    for (let v = 1; v <= 6; v++) await other.append(change(v));
    other.close();
    await t.store(change(2));
    await t.until(() => failures().length === 2);
    assertMatch(
      failures()[1],
      /^Async destination file:.* fails otherwise now, the node goes on without it: it is at version 5, ahead of the primary at 2: it is not a copy of this backup/,
    );
    // Each try after it fails the same way, the versions aside: no line more.
    await t.store(change(3));
    await t.until((s) => s.error?.includes("primary at 3") ?? false);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assertEquals(failures().length, 2, t.logs.join("\n"));
  } finally {
    await t.done();
  }
});

Deno.test("AsyncCopy: the hourly line counts the time that passed, not the wall clock, which may be set back or on", async () => {
  // The plugin passes no clock: the wall clock is stepped (NTP; a machine without a real-time
  // clock boots at an old date), while the time that passed is an hour.
  const { now: wall } = Date;
  const { now: elapsed } = performance;
  let stepped = 0;
  let passed = 0;
  Date.now = () => wall() + stepped;
  performance.now = () => elapsed.call(performance) + passed;
  let tries = 0;
  const t = setUp({ open: () => (tries++, Promise.reject(new Error("down"))) });
  try {
    for (let v = 1; v <= 3; v++) await t.store(change(v));
    await t.until((s) => s.state === "failing");
    stepped = 400 * 3_600_000;
    const after = tries + 2;
    await t.until(() => tries >= after);
    assertEquals(t.logs.length, 1, t.logs.join("\n"));
    stepped = -24 * 3_600_000;
    passed = 3_600_000;
    await t.until(() => t.logs.length === 2);
    assertMatch(t.logs[1], /still fails after 1 h,/);
  } finally {
    Date.now = wall;
    performance.now = elapsed;
    await t.done();
  }
});

Deno.test("AsyncCopy: a destination the launcher does not allow says to run doctor, not Deno's flag", async () => {
  const t = setUp({
    // As Deno denies a socket: or s3:// copy that backup.lock gained after init.
    open: () =>
      Promise.reject(
        new Deno.errors.NotCapable(
          'Requires net access to "backup.example.org:8700", run again with the --allow-net flag',
        ),
      ),
  });
  try {
    await t.store(change(1));
    const failing = await t.until((s) => s.state === "failing");
    assertEquals(
      failing.error,
      `the plugin's launcher does not allow it (requires net access to ` +
        `"backup.example.org:8700"): backup.lock names a backup the launcher was not written ` +
        `for (changed after init?): run "cln-backup doctor --lightning-dir '${Deno.cwd()}'", ` +
        `which names the flags the launcher needs`,
    );
    assertMatch(t.logs[0], /failed, the node goes on .*: the plugin's launcher does not allow/);
  } finally {
    await t.done();
  }
});

Deno.test("AsyncCopy refuses a destination ahead of the primary, naming both versions and the mirror for this node", async () => {
  const t = setUp({ dir: "'/lightning dir'" });
  try {
    createFileBackup(`${t.root}/copy`);
    const other = openBackend(t.copyUrl);
    for (let v = 1; v <= 4; v++) await other.append(change(v));
    other.close();
    await t.store(change(1));
    const status = await t.until((s) => s.state === "failing");
    assertMatch(
      status.error ?? "",
      /at version 3, ahead of the primary at 1: it is not a copy of this backup: with lightningd stopped, remove it from async_urls, then add a new copy with "cln-backup mirror NEW_URL --lightning-dir '\/lightning dir' --async"$/,
    );
  } finally {
    await t.done();
  }
});

/**
 * In `root`: a primary whose base is at version 5 (as after a compaction) and an empty copy at
 * `copy`, still at 0; returns the primary, open.
 */
function compactedPastCopy(root: string): { primaryUrl: string; primary: Backend } {
  Deno.writeFileSync(`${root}/db`, new Uint8Array(4096).fill(1));
  createFileBackup(`${root}/primary`, { version: 5, path: `${root}/db` });
  createFileBackup(`${root}/copy`);
  const primaryUrl = `file://${root}/primary`;
  return { primaryUrl, primary: openBackend(primaryUrl) };
}

Deno.test("AsyncCopy says so when the primary no longer holds the changes it lacks", async () => {
  const root = Deno.makeTempDirSync({ prefix: "async-copy-" });
  try {
    const { primaryUrl, primary } = compactedPastCopy(root);
    const copy = new AsyncCopy({
      url: `file://${root}/copy`,
      open: () => Promise.resolve(openBackend(`file://${root}/copy`)),
      readPrimary: () => Promise.resolve(new FileBackupReader(primaryUrl, `${root}/primary`)),
      primaryVersion: () => primary.state().version,
      log: () => {},
      maxRetryMs: 20,
      dir: "'/lightning dir'",
    });
    try {
      await primary.append(change(6));
      copy.feed(change(6));
      let status = copy.status();
      for (let i = 0; i < 400 && status.state !== "failing"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        status = copy.status();
      }
      assertMatch(
        status.error ?? "",
        /no changes below its snapshot at version 5, above this copy's version 0 \(it was compacted\): with lightningd stopped, remove this copy from async_urls, then add a new copy with "cln-backup mirror NEW_URL --lightning-dir '\/lightning dir' --async"$/,
      );
    } finally {
      await copy.close();
      primary.close();
    }
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("AsyncCopy: a copy that opens but cannot catch up logs one line, not one pair per try", async () => {
  const root = Deno.makeTempDirSync({ prefix: "async-copy-" });
  try {
    const { primaryUrl, primary } = compactedPastCopy(root);
    const logs: string[] = [];
    let opens = 0;
    const copy = new AsyncCopy({
      url: `file://${root}/copy`,
      open: () => (opens++, Promise.resolve(openBackend(`file://${root}/copy`))),
      readPrimary: () => Promise.resolve(new FileBackupReader(primaryUrl, `${root}/primary`)),
      primaryVersion: () => primary.state().version,
      log: (_, message) => logs.push(message),
      maxRetryMs: 5,
    });
    try {
      await primary.append(change(6));
      copy.feed(change(6));
      const states = new Set<string>();
      for (let i = 0; i < 400 && opens < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (opens > 1) states.add(copy.status().state);
      }
      assert(opens >= 5, `it tried ${opens} times`);
      assertEquals([...states], ["failing"]);
      assertEquals(logs.length, 1, logs.join("\n"));
      assertMatch(logs[0], /failed, the node goes on .*no changes below its snapshot/);
    } finally {
      await copy.close();
      primary.close();
    }
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("AsyncCopy keeps its destination open while a task runs on it: a failure reopens it only after", async () => {
  const t = setUp();
  try {
    createFileBackup(`${t.root}/copy`);
    assertEquals(t.copy.withDestination(() => Promise.resolve()), undefined, "not open yet");
    for (let v = 1; v <= 3; v++) await t.store(change(v));
    await t.until((s) => s.state === "caught-up");
    const dest = t.copy.destination()!;
    let release = () => {};
    const task = t.copy.withDestination(() => new Promise<void>((r) => release = r))!;
    assertEquals(t.copy.withDestination(() => Promise.resolve()), undefined, "one at a time");
    // A change the copy cannot take (a gap) fails it; the task still has its destination.
    t.copy.feed(change(9));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert(t.copy.destination() === dest, "the destination was closed under the task");
    assertEquals(t.copy.status().state, "behind");
    release();
    await task;
    const failing = await t.until((s) => s.state === "failing");
    assertMatch(failing.error!, /next change it has is 9/);
    assert(t.copy.destination() !== dest, "closed once the task ended");
  } finally {
    await t.done();
  }
});

/**
 * A destination whose rewind stores nothing, as S3's: the next change takes the dropped one's
 * place. `stored` is what lasts (what a reopen, or a restore, sees); `failAppends` refuses
 * every append meanwhile.
 */
function memoryDestination(url: string) {
  const stored: Change[] = [];
  const control = { failAppends: false, opens: 0 };
  const open = (): Backend => {
    control.opens++;
    let view = [...stored];
    return {
      url,
      state: () => ({
        version: view.at(-1)?.version ?? 0,
        rewindVersion: view.length > 0 ? view.at(-2)?.version ?? 0 : undefined,
        records: view.length,
        tail: undefined,
      }),
      append: (c: Change) => {
        if (control.failAppends) return Promise.reject(new Error("503 SlowDown"));
        view.push(c);
        stored.splice(0, stored.length, ...view);
        return Promise.resolve();
      },
      rewind: () => {
        view = view.slice(0, -1);
        return Promise.resolve();
      },
      cutTail: () => Promise.resolve("nothing"),
      close: () => {},
    };
  };
  return { stored, control, open };
}

Deno.test("AsyncCopy: a rewind that stores nothing (S3), reopened before the next change, drops the change again", async () => {
  const dest = memoryDestination("s3://bucket/copy");
  const t = setUp({ open: () => Promise.resolve(dest.open()) });
  try {
    for (let v = 1; v <= 6; v++) await t.store(change(v));
    // Stored by the primary and copied, never committed by the node.
    const never: Change = {
      version: 7,
      statements: ["INSERT INTO notes VALUES ('never')", bump(6)],
    };
    await t.store(never);
    await t.until((s) => s.state === "caught-up" && s.version === 7);
    await t.copy.close();
    t.primary.close();

    // The next run: the primary drops change 7 and stores the node's change 7.
    const primary = openBackend(t.primaryUrl);
    await primary.rewind();
    const copy = new AsyncCopy({
      ...t.copy.options,
      primaryVersion: () => primary.state().version,
    });
    try {
      dest.control.failAppends = true;
      for (const c of [change(7), change(8), change(9)]) {
        await primary.append(c);
        copy.feed(c);
      }
      for (let i = 0; i < 400 && copy.status().state !== "failing"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assertEquals(copy.status().state, "failing");
      const opens = dest.control.opens;
      dest.control.failAppends = false;
      for (let i = 0; i < 400 && copy.status().state !== "caught-up"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assertEquals([copy.status().state, copy.status().version], ["caught-up", 9]);
      assert(dest.control.opens > opens, "reopened after the failure");
      assertEquals(
        dest.stored.map((c) => ({ kind: "change", ...c })),
        t.changes(t.primaryUrl),
      );
    } finally {
      await copy.close();
      primary.close();
    }
  } finally {
    Deno.removeSync(t.root, { recursive: true });
  }
});

Deno.test("AsyncCopy neither cuts, drops nor appends to a destination holding another backup than its tie", async () => {
  const tie = "00112233445566778899aabbccddeeff";
  for (const withoutId of [false, true]) {
    const t = setUp({ backupId: tie });
    try {
      // Another backup where the copy is, one change behind and its last change droppable.
      createFileBackup(`${t.root}/copy`);
      const other = openBackend(t.copyUrl);
      for (const v of [1, 2]) await other.append(change(v));
      const held = await other.backupIdHex!();
      other.close();
      if (withoutId) {
        const open = t.copy.options.open;
        t.copy.options.open = async () => {
          const backend = await open();
          backend.backupIdHex = undefined; // a backup with no id, as on a Python server
          return backend;
        };
      }
      for (const v of [1, 2, 3]) await t.store(change(v));
      const status = await t.until((s) => s.state === "failing");
      const holds = withoutId ? "a backup without an id" : `backup ${held}`;
      assertMatch(
        status.error!,
        new RegExp(`^it is ${holds}, not ${tie}, the one backup\\.lock ties to it .*--async"$`),
      );
      assertEquals(t.logs.filter((line) => line.includes(tie)).length, 1, t.logs.join("\n"));
      await t.copy.close();
      assertEquals(t.changes(t.copyUrl).map((e) => e.version), [1, 2]);
    } finally {
      await t.done();
    }
  }
});
