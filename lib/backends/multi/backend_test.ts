import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { recordedChanges } from "../../../tests/support/cli_testing.ts";
import type { Backend } from "../backend.ts";
import { createFileBackup } from "../file/create.ts";
import { FileBackend } from "../file/writer.ts";
import { MultiBackend } from "./backend.ts";
import { StoppingError } from "../stopping.ts";
import { logName } from "../../format/layout.ts";
import { bumpStatement } from "../../../tests/support/statements.ts";

const CHANGES = recordedChanges(["fresh-start"]);

function fileBackends(root: string, names: string[]): FileBackend[] {
  return names.map((name) => {
    createFileBackup(`${root}/${name}`);
    return FileBackend.open(`file://${root}/${name}`, `${root}/${name}`);
  });
}

/** `backend`, whose appends fail as on a disk that is gone. */
function failing(backend: Backend): Backend {
  return {
    url: backend.url,
    state: () => backend.state(),
    append: () => Promise.reject(new Error("No space left on device")),
    rewind: () => backend.rewind(),
    cutTail: () => backend.cutTail(),
    close: () => backend.close(),
  };
}

Deno.test("MultiBackend: a destination dropped under degrade, or lagging, is said to be added anew with mirror", async () => {
  const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
  const [a, b, c] = fileBackends(root, ["a", "b", "c"]);
  try {
    const logs: string[] = [];
    const degraded = new MultiBackend([a, failing(b)], "degrade", (_, m) => logs.push(m));
    await degraded.append(CHANGES[0]);
    assertEquals(logs, [
      `BROKEN: destination ${b.url} failed on change ${CHANGES[0].version} and gets no more ` +
      `changes: No space left on device; the node goes on with 1 destination(s) ` +
      `("mirror_failure": "degrade"), and this one lags behind it from now on: with ` +
      `lightningd stopped, remove it from backup.lock (backend_url must be a destination ` +
      `that went on), then add a new copy with "cln-backup mirror NEW_URL --lightning-dir DIR"`,
    ]);
    // c lacks the change a holds: the node committed it, so c is no copy of the node's.
    const lagging = new MultiBackend([a, c], "stop");
    const error = await assertRejects(() => lagging.append(CHANGES[1]));
    assertEquals(
      error.message,
      `${c.url} is at version 0, behind the other destinations: it lacks a change the node ` +
        `committed: with lightningd stopped, remove it from backup.lock, then add a new copy ` +
        `with "cln-backup mirror NEW_URL --lightning-dir DIR"`,
    );
    // backend_url lagging: removed, backup.lock would name none.
    const primaryLagging = new MultiBackend([c, a], "stop");
    const primaryError = await assertRejects(() => primaryLagging.append(CHANGES[1]));
    assertEquals(
      primaryError.message,
      `${c.url} is at version 0, behind the other destinations: it lacks a change the node ` +
        `committed: with lightningd stopped, remove it from backup.lock (make backend_url a ` +
        `destination that holds every change), then add a new copy with "cln-backup mirror ` +
        `NEW_URL --lightning-dir DIR"`,
    );
  } finally {
    for (const backend of [a, b, c]) backend.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("MultiBackend: a destination that stops the node shows as failed, with why", async () => {
  const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
  const [a, b] = fileBackends(root, ["a", "b"]);
  try {
    const stopping = new MultiBackend([a, failing(b)], "stop");
    await assertRejects(() => stopping.append(CHANGES[0]), /No space left on device/);
    assertEquals(
      stopping.state().destinations?.map((d) => [d.url, d.state, d.error]),
      [[a.url, "ok", null], [b.url, "failed", "No space left on device"]],
    );
    // Still no change goes to the others alone.
    await assertRejects(() => stopping.append(CHANGES[1]), /b is at version 0, behind the other/);
  } finally {
    for (const backend of [a, b]) backend.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("MultiBackend: a destination that fails to get ready shows as failed too", async () => {
  const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
  const [a, b] = fileBackends(root, ["a", "b"]);
  try {
    const unreachable = {
      ...failing(b),
      ready: () => Promise.reject(new Error("no route to host")),
    };
    const multi = new MultiBackend([a, unreachable], "stop");
    await assertRejects(() => multi.ready(), /no route to host/);
    assertEquals(
      multi.state().destinations?.map((d) => [d.url, d.state, d.error]),
      [[a.url, "ok", null], [b.url, "failed", "no route to host"]],
    );
  } finally {
    for (const backend of [a, b]) backend.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("MultiBackend: a wait cut short because the plugin stops is no destination's failure", async () => {
  const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
  const [a, b] = fileBackends(root, ["a", "b"]);
  try {
    const logs: string[] = [];
    // A socket: or s3:// destination whose retry the plugin's lifetime signal ended.
    const stopped: Backend = { ...failing(b), append: () => Promise.reject(new StoppingError()) };
    const multi = new MultiBackend([a, stopped], "degrade", (_, m) => logs.push(m));
    const error = await assertRejects(() => multi.append(CHANGES[0]));
    assertEquals(error instanceof StoppingError, true, error.message);
    // Nothing says to replace it (its BROKEN line tells the operator to make a new copy).
    assertEquals(logs, []);
  } finally {
    a.close();
    b.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("MultiBackend: a destination that will refuse the next change says so before it comes", async () => {
  const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
  const [a, b] = fileBackends(root, ["a", "b"]);
  try {
    const why = "the backup in s3://bucket/node lost objects: records 3-5";
    // An S3 destination that found its objects deleted behind it refuses the next change.
    const losing: Backend = {
      ...failing(b),
      state: () => ({ ...b.state(), failure: why }),
      append: () => Promise.reject(new Error(why)),
    };
    const stopping = new MultiBackend([a, losing], "stop");
    assertEquals(stopping.state().failure, `${b.url}: ${why}`);
    assertEquals(
      stopping.state().destinations?.map((d) => [d.url, d.state, d.error]),
      [[a.url, "ok", null], [b.url, "ok", why]],
    );
    await assertRejects(() => stopping.append(CHANGES[0]), /lost objects/);
    assertEquals(stopping.state().destinations?.[1].state, "failed");
    // Under degrade the node goes on without it: the destination shows why, the backup is fine.
    const degrading = new MultiBackend([a, losing], "degrade");
    assertEquals(degrading.state().failure, undefined);
    assertEquals(degrading.state().destinations?.[1].error, why);
  } finally {
    for (const backend of [a, b]) backend.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("MultiBackend: under degrade, a destination that will refuse the next change, and is the last to go on, says so", async () => {
  const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
  const [a, b] = fileBackends(root, ["a", "b"]);
  try {
    const why = "the backup in s3://bucket/node lost objects: records 3-5";
    /** `backend`, until `lost` is set: then it refuses every change, and says so beforehand. */
    const losing = (backend: Backend, lost: { now: boolean }): Backend => ({
      ...failing(backend),
      state: () => ({ ...backend.state(), ...(lost.now ? { failure: why } : {}) }),
      append: (change) => lost.now ? Promise.reject(new Error(why)) : backend.append(change),
    });
    // Both refuse the next change: under degrade too, it stops the node.
    const both = new MultiBackend([losing(a, { now: true }), losing(b, { now: true })], "degrade");
    assertEquals(both.state().failure, `${a.url}: ${why}; ${b.url}: ${why}`);
    await assertRejects(() => both.append(CHANGES[0]), /lost objects/);
    // The other one failed and gets no more changes: the one left refuses the next change.
    const lost = { now: false };
    const degraded = new MultiBackend([losing(a, lost), failing(b)], "degrade");
    await degraded.append(CHANGES[0]);
    assertEquals(degraded.state().failure, undefined);
    lost.now = true;
    assertEquals(degraded.state().failure, `${a.url}: ${why}`);
    await assertRejects(() => degraded.append(CHANGES[1]), /lost objects/);
  } finally {
    for (const backend of [a, b]) backend.close();
    Deno.removeSync(root, { recursive: true });
  }
});

/** Backups at `root`/`names` holding changes 1 to `version`, each a bump as lightningd's. */
async function atVersion(root: string, names: string[], version: number): Promise<FileBackend[]> {
  const backends = fileBackends(root, names);
  for (let v = 1; v <= version; v++) {
    for (const b of backends) await b.append({ version: v, statements: [bumpStatement(v - 1)] });
  }
  return backends;
}

for (const mode of ["stop", "degrade"] as const) {
  Deno.test(`MultiBackend: a rewind drops the torn record a crash left in a destination one behind (${mode})`, async () => {
    const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
    const names = ["a", "b"];
    let [a, b] = await atVersion(root, names, 3);
    try {
      // A power cut while both stored change 4, which the node never committed: a holds it,
      // b's record of it is torn.
      await a.append({ version: 4, statements: ["SELECT 'never committed'", bumpStatement(3)] });
      for (const backend of [a, b]) backend.close();
      Deno.writeFileSync(`${root}/b/${logName(1)}`, new Uint8Array(7).fill(1), { append: true });
      [a, b] = names.map((n) => FileBackend.open(`file://${root}/${n}`, `${root}/${n}`));
      const multi = new MultiBackend([a, b], mode);
      await multi.ready();
      // The node is at 3: the version check drops change 4, then the node sends its own.
      assertEquals([multi.state().version, multi.state().rewindVersion], [4, 3]);
      await multi.rewind();
      await multi.append({ version: 4, statements: [bumpStatement(3)] });
      assertEquals(multi.state().destinations?.map((d) => [d.version, d.state]), [
        [4, "ok"],
        [4, "ok"],
      ]);
    } finally {
      for (const backend of [a, b]) backend.close();
      Deno.removeSync(root, { recursive: true });
    }
  });
}

/** How a destination keeps the change a rewind drops: the step that fails, and its error. */
const KEEPS = [
  { fails: "rewind", error: "Input/output error" },
  // An S3 rewind stores nothing: the dropped change stays until the next change supersedes it.
  { fails: "change after it", error: "503 SlowDown" },
] as const;

for (const { fails, error } of KEEPS) {
  Deno.test(`MultiBackend: under degrade, a destination failing the rewind at start (${fails}) stops the node`, async () => {
    const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
    const [a, b] = await atVersion(root, ["a", "b"], 4);
    try {
      // Both hold change 4, which the node never committed; b keeps it.
      let rewound = false;
      const keeping: Backend = {
        ...failing(b),
        state: () => ({ ...b.state(), ...(rewound ? { version: 3, rewindVersion: 2 } : {}) }),
        rewind: () => {
          if (fails === "rewind") return Promise.reject(new Error(error));
          rewound = true;
          return Promise.resolve();
        },
        append: () => Promise.reject(new Error(error)),
      };
      const logs: string[] = [];
      const multi = new MultiBackend([a, keeping], "degrade", (_, m) => logs.push(m));
      const rejected = await assertRejects(async () => {
        await multi.rewind();
        await multi.append({ version: 4, statements: [bumpStatement(3)] });
      });
      assertEquals(
        rejected.message,
        `${b.url}: ${error} (a rewind and the change after it need every destination, under ` +
          `"degrade" too: one dropped there may still hold the change the node never ` +
          `committed, at the version it commits next, and pass for a copy: restart lightningd ` +
          `when it is back, or with lightningd stopped remove it from backup.lock)`,
      );
      // Not dropped: left at 4 with the dropped change, b would pass for a's copy.
      assertEquals(logs, []);
      assertEquals(multi.state().destinations?.map((d) => d.state), ["ok", "failed"]);
    } finally {
      for (const backend of [a, b]) backend.close();
      Deno.removeSync(root, { recursive: true });
    }
  });
}

/** `backend`, on a server that answers an error when asked its backup's id (PLACE). */
function refusingId(backend: Backend): Backend {
  return {
    url: backend.url,
    state: () => backend.state(),
    append: (change) => backend.append(change),
    rewind: () => backend.rewind(),
    cutTail: () => backend.cutTail(),
    close: () => backend.close(),
    backupIdHex: () =>
      Promise.reject(new Error("the server refused to say its backup's id (PLACE): disk full")),
  };
}

for (const onFailure of ["stop", "degrade"] as const) {
  Deno.test(`MultiBackend: a mirror whose tie cannot be checked (the server's error to PLACE) ${onFailure === "stop" ? "stops the node" : "is dropped under degrade"}`, async () => {
    const root = Deno.makeTempDirSync({ prefix: "multi-backend-" });
    const [a, b] = fileBackends(root, ["a", "b"]);
    const broken: string[] = [];
    try {
      const multi = new MultiBackend(
        [a, refusingId(b)],
        onFailure,
        (_level, line) => broken.push(line),
        [undefined, "ab".repeat(16)],
      );
      if (onFailure === "stop") {
        await assertRejects(
          () => multi.ready(),
          /refused to say its backup's id \(PLACE\): disk full/,
        );
        assertEquals(multi.state().destinations?.map((d) => d.state), ["ok", "failed"]);
        return;
      }
      await multi.ready();
      await multi.append(CHANGES[0]);
      assertEquals(
        multi.state().destinations?.map((d) => [d.state, d.version]),
        [["ok", 1], ["broken", 0]],
      );
      assertEquals(broken.length, 1);
      assertEquals(
        broken[0].startsWith(
          `BROKEN: destination ${b.url} gets no changes: the server refused to say its ` +
            `backup's id (PLACE): disk full`,
        ),
        true,
        broken[0],
      );
    } finally {
      for (const backend of [a, b]) backend.close();
      Deno.removeSync(root, { recursive: true });
    }
  });
}
