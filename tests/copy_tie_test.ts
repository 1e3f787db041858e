/**
 * A copy is tied to the backup it was made as: `mirror` records its backup id in backup.lock,
 * and the plugin refuses to append the node's changes to another backup found at its URL
 * (two mounts swapped on a NAS), which would ruin that other node's backup.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import {
  BufferedOutput,
  makeBackup,
  makeNodeDir,
  recordedChanges,
  removeNodeDir,
} from "./support/cli_testing.ts";
import { A_CHANGES, NEXT, settledCopy, startPlugin, UNTIED } from "./support/copy_tie.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { openReader } from "../lib/backends/open.ts";
import type { Backend } from "../lib/backends/backend.ts";
import { mirror } from "../lib/cli/mirror.ts";
import { compactBackup } from "../lib/compact/compact.ts";
import { readChain } from "../lib/format/chain.ts";
import { formatBackupId } from "../lib/format/segment.ts";
import { openAtStart } from "../lib/plugin/startup.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { advised, runAsPrinted } from "./support/as_printed.ts";

/** Node B's own backup, at version 12: another node's, lower than node A's 15. */
async function otherNodesBackup(path: string): Promise<string> {
  const changes = [
    ...recordedChanges(["fresh-start"]),
    { version: 12, statements: ["INSERT INTO vars (name, intval) VALUES ('node-b', 1)"] },
  ];
  return await makeBackup(path, changes);
}

function lastVersion(url: string): number {
  const reader = openReader(url);
  try {
    return reader.describe().lastVersion;
  } finally {
    reader.close();
  }
}

Deno.test("an async copy whose URL now holds another node's backup, lower, gets none of the node's changes", async () => {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  let backend: Backend | undefined;
  try {
    const url = await makeBackup(`${base}/backup`, A_CHANGES);
    writeLockFile(dir, { backend_url: url });
    const copy = `file://${base}/copy`;
    const output = new BufferedOutput();
    assertEquals(await mirror([copy, "--lightning-dir", dir, "--async"], output), 0);
    // The NAS's two mounts swapped: node B's backup is where node A's copy was.
    Deno.renameSync(`${base}/copy`, `${base}/copy-of-a`);
    await otherNodesBackup(`${base}/copy`);
    const lock = readLockFile(dir);
    writeLockFile(dir, { ...lock, async_retry_s: 0.05 });

    backend = await startPlugin(dir);
    await backend.append(NEXT[0]);
    const status = await settledCopy(backend);
    assertEquals(status.state, "failing", JSON.stringify(status));
    assertMatch(status.error!, UNTIED);
    assertEquals(status.error!.split("\n").length, 1);
    // The node goes on: its own backup took the change.
    assertEquals(backend.state().version, NEXT[0].version);
    backend.close();
    backend = undefined;
    assertEquals(lastVersion(copy), 12, "node B's backup is as it was");
  } finally {
    backend?.close();
    removeNodeDir(dir);
  }
});

/** Node B's own backup at version 15, node A's version: its mirror would take A's changes. */
async function otherNodesBackupAt15(path: string): Promise<string> {
  const changes = [
    ...recordedChanges(["fresh-start"]),
    ...[12, 13, 14, 15].map((version) => ({
      version,
      statements: [`INSERT INTO vars (name, intval) VALUES ('node-b-${version}', 1)`],
    })),
  ];
  return await makeBackup(path, changes);
}

for (const failure of ["stop", "degrade"] as const) {
  Deno.test(`a mirror whose URL now holds another node's backup at the node's version gets none of its changes (mirror_failure ${failure})`, async () => {
    const dir = makeNodeDir("restart");
    const base = Deno.realPathSync(`${dir}/..`);
    let backend: Backend | undefined;
    try {
      const url = await makeBackup(`${base}/backup`, A_CHANGES);
      writeLockFile(dir, { backend_url: url });
      const second = `file://${base}/second`;
      assertEquals(await mirror([second, "--lightning-dir", dir], new BufferedOutput()), 0);
      Deno.renameSync(`${base}/second`, `${base}/second-of-a`);
      await otherNodesBackupAt15(`${base}/second`);
      writeLockFile(dir, { ...readLockFile(dir), mirror_failure: failure });

      const logs: string[] = [];
      backend = await startPlugin(dir, logs);
      if (failure === "stop") {
        const error = await backend.ready!().then(() => undefined, (e: Error) => e.message);
        assertMatch(error ?? "resolved", UNTIED);
        assertMatch(error!, /mirror_failure": "degrade"/);
        // The mirror that adds it anew, whole, for this node.
        assertMatch(
          error!,
          new RegExp(`add a new copy with "cln-backup mirror NEW_URL --lightning-dir '${dir}'"`),
        );
        assertEquals(backend.state().destinations![1].state, "failed");
      } else {
        await backend.ready!();
        await backend.append(NEXT[0]);
        assertEquals(backend.state().version, NEXT[0].version);
        const [, mirrored] = backend.state().destinations!;
        assertEquals(mirrored.state, "broken");
        assertMatch(mirrored.error!, UNTIED);
        assertEquals(logs.filter((line) => line.startsWith("BROKEN")).length, 1, logs.join("\n"));
        assertEquals(lastVersion(url), NEXT[0].version);
      }
      backend.close();
      backend = undefined;
      assertEquals(lastVersion(second), 15, "node B's backup is as it was");
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  });
}

Deno.test("compacted, the primary, a mirror and an async copy keep their backup ids: the tied copies take the node's changes", async () => {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  let backend: Backend | undefined;
  try {
    const url = await makeBackup(`${base}/backup`, A_CHANGES);
    writeLockFile(dir, { backend_url: url });
    const second = `file://${base}/second`;
    const copy = `file://${base}/copy`;
    assertEquals(await mirror([second, "--lightning-dir", dir], new BufferedOutput()), 0);
    assertEquals(await mirror([copy, "--lightning-dir", dir, "--async"], new BufferedOutput()), 0);
    // The copies are made from a snapshot: one change on top of it gives each a log to fold.
    backend = await startPlugin(dir);
    await backend.append(NEXT[0]);
    assertEquals((await settledCopy(backend)).state, "caught-up");
    backend.close();
    for (const name of ["backup", "second", "copy"]) {
      const path = `${base}/${name}`;
      const before = readChain(path).backupId;
      compactBackup(`file://${path}`, path, { target: NEXT[0].version, nodeStopped: true });
      assertEquals(readChain(path).bases.at(-1)?.number, NEXT[0].version, name);
      assertEquals(readChain(path).backupId, before, `${name} keeps its id`);
    }

    backend = await startPlugin(dir);
    for (const change of NEXT.slice(1)) await backend.append(change);
    const status = await settledCopy(backend);
    assertEquals([status.state, status.version], ["caught-up", NEXT[2].version]);
    assertEquals(backend.state().destinations!.map((d) => [d.state, d.version]), [
      ["ok", NEXT[2].version],
      ["ok", NEXT[2].version],
    ]);
  } finally {
    backend?.close();
    removeNodeDir(dir);
  }
});

Deno.test("the plugin's start names the copies not tied to their backup id, with the command that ties them", async () => {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    const url = await makeBackup(`${base}/backup`, A_CHANGES);
    const copy = await makeBackup(`${base}/copy`, A_CHANGES);
    // A Python server's copy (wire v1, no backup.credential) has no id to tie.
    const python = "socket:127.0.0.1:1";
    const untiedLines = async () => {
      const startup = await openAtStart(dir);
      if (!("error" in startup.backend)) startup.backend.close();
      return startup.log.filter((line) => line.message.startsWith("Not tied"));
    };
    writeLockFile(dir, { backend_url: url, async_urls: [copy, python] });
    const [line, ...more] = await untiedLines();
    assertEquals(more, []);
    assertEquals(line.level, "info");
    assertMatch(
      line.message,
      new RegExp(
        `^Not tied to their backup id in backup\\.lock .*: ${copy}: once you know each holds ` +
          `this node's copy, tie it with "cln-backup mirror <url> --lightning-dir '${dir}'"$`,
      ),
    );
    writeLockFile(dir, {
      backend_url: url,
      async_urls: [copy, python],
      backup_ids: { [copy]: formatBackupId(readChain(`${base}/copy`).backupId) },
    });
    assertEquals(await untiedLines(), []);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("backend_url is not checked against backup_ids, which tie copies: a mirror made backend_url keeps working, and is never dropped", async () => {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  let backend: Backend | undefined;
  try {
    const url = await makeBackup(`${base}/backup`, A_CHANGES);
    const second = await makeBackup(`${base}/second`, A_CHANGES);
    writeLockFile(dir, {
      backend_url: url,
      mirror_urls: [second],
      mirror_failure: "degrade",
      // An entry left from when backend_url was a copy, of a backup since made anew there.
      backup_ids: {
        [url]: "00112233445566778899aabbccddeeff",
        [second]: formatBackupId(readChain(`${base}/second`).backupId),
      },
    });
    backend = await startPlugin(dir);
    await backend.ready!();
    assertEquals(backend.state().destinations!.map((d) => d.state), ["ok", "ok"]);
  } finally {
    backend?.close();
    removeNodeDir(dir);
  }
});

/** How a copy's directory is spoiled, and how the plugin says what it is. */
const SPOILED: Record<
  string,
  { spoil(path: string): void; what(copy: string, path: string): string }
> = {
  "holds no segment": {
    // Its disk not mounted at the directory, or its files deleted.
    spoil(path) {
      Deno.removeSync(path, { recursive: true });
      Deno.mkdirSync(path);
    },
    what: (_, path) =>
      `Cannot open backup: "${path}" holds no backup segment (no base-*.clnb or log-*.clnb ` +
      `file), a copy backup.lock names: mount its disk or fix the URL; or, if its files ` +
      `were deleted, `,
  },
  "is of format 2": {
    spoil(path) {
      for (const { name } of Deno.readDirSync(path)) {
        if (!name.endsWith(".clnb")) continue;
        const bytes = Deno.readFileSync(`${path}/${name}`);
        new DataView(bytes.buffer).setUint32(8, 2);
        Deno.writeFileSync(`${path}/${name}`, bytes);
      }
    },
    what: (copy, path) =>
      `Cannot open backup: "${copy}" is not one this version appends to: "${path}/` +
      `base-00000000000000000015.clnb" has format 2, written by a development version of ` +
      `cln-backup before backups had an identity; this one reads format 3: `,
  },
  "is damaged": {
    spoil(path) {
      const log = `${path}/log-00000000000000000001.clnb`;
      const bytes = Deno.readFileSync(log);
      bytes[40] ^= 0xff;
      Deno.writeFileSync(log, bytes);
    },
    what: (copy, path) =>
      `Cannot open backup: "${copy}" is damaged: segment header checksum mismatch at ` +
      `offset 0 of "${path}/log-00000000000000000001.clnb", which no crash explains: `,
  },
};

for (
  const [isAsync, how] of [
    [false, "holds no segment"],
    [true, "holds no segment"],
    [true, "is of format 2"],
    [true, "is damaged"],
  ] as const
) {
  const key = isAsync ? "async_urls" as const : "mirror_urls" as const;
  Deno.test(`a copy in ${key} whose directory ${how} is made anew with the mirror that runs as printed, never restored from`, async () => {
    const dir = makeNodeDir("restart");
    const base = Deno.realPathSync(`${dir}/..`);
    const real = Deno.realPathSync(dir);
    let backend: Backend | undefined;
    try {
      const url = await makeBackup(`${base}/backup`, A_CHANGES);
      writeLockFile(dir, { backend_url: url });
      const path = `${base}/copy`;
      const copy = `file://${path}`;
      const output = new BufferedOutput();
      const added = await mirror(
        [copy, "--lightning-dir", dir, ...isAsync ? ["--async"] : []],
        output,
      );
      assertEquals(added, 0, output.transcript);
      SPOILED[how].spoil(path);
      let refusal: string;
      if (isAsync) {
        writeLockFile(dir, { ...readLockFile(dir), async_retry_s: 0.05 });
        backend = await startPlugin(dir);
        await backend.append(NEXT[0]);
        const status = await settledCopy(backend);
        assertEquals(status.state, "failing", JSON.stringify(status));
        refusal = status.error!;
        backend.close();
        backend = undefined;
        // The node committed the change its backup took.
        Deno.removeSync(`${dir}/lightningd.sqlite3`);
        const reader = openReader(url);
        try {
          restoreBackup(reader, `${dir}/lightningd.sqlite3`);
        } finally {
          reader.close();
        }
      } else {
        const startup = await openAtStart(dir);
        assert("error" in startup.backend);
        refusal = startup.backend.error;
      }
      assertEquals(
        refusal,
        SPOILED[how].what(copy, path) +
          `with lightningd stopped, move "${path}" aside and remove it from ` +
          `${key} in backup.lock, then make it anew with "cln-backup mirror '${copy}' ` +
          `--lightning-dir '${real}'${isAsync ? " --async" : ""}"`,
      );
      Deno.renameSync(path, `${path}-aside`);
      const lock = readLockFile(dir);
      writeLockFile(dir, {
        ...lock,
        [key]: (lock[key] as string[]).filter((each) => each !== copy),
      });
      const made = await runAsPrinted(advised(refusal), dir);
      assertEquals(made.code, 0, made.out);
      assertEquals(lastVersion(copy), isAsync ? NEXT[0].version : A_CHANGES.at(-1)!.version);
      // The node starts with the copy made anew.
      backend = await startPlugin(dir);
    } finally {
      backend?.close();
      removeNodeDir(dir);
    }
  });
}
