import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { setUpEncryptedNode } from "../../tests/support/encrypted.ts";
import { DataKey } from "../crypto/data_key.ts";
import { writeKeyFile } from "../crypto/key_file.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { writeLockFile } from "../backup/lock_file.ts";
import { recordedChanges } from "../../tests/support/cli_testing.ts";
import { readChain } from "../format/chain.ts";
import { openAtStart } from "./startup.ts";
import { mountTmpfs, run } from "../../tests/support/tmpfs.ts";
import { freePort } from "../../tests/support/server_process.ts";
import { CREDENTIALS_FILE } from "../backends/s3/credentials.ts";

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

Deno.test("start-up: another backup's key file is refused in one line naming the command that writes the right one", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { url } = await setUpEncryptedNode(dir);
    writeKeyFile(dir, await DataKey.generate());
    const startup = await openAtStart(dir);
    assert("error" in startup.backend);
    const error = startup.backend.error;
    assertEquals(error.split("\n").length, 1);
    assertEquals(error.match(/Cannot /g)?.length, 1, error);
    assertMatch(
      error,
      /^Cannot start backup: ".*\/backup\.key" holds another backup's key \(key id [0-9a-f]+; ".*" needs [0-9a-f]+\): put this backup's own key file back, or write it with "cln-backup rekey '.*' --key-file '.*'"/,
    );
    assert(error.includes(url));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("start-up: a damaged mirror is said to be replaced with mirror, not made with init", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const url = `file://${dir}/backup`;
    const mirror = `file://${dir}/mirror`;
    createFileBackup(`${dir}/backup`);
    createFileBackup(`${dir}/mirror`);
    // A log lost from the middle, as in the test above.
    const writer = FileBackend.open(mirror, `${dir}/mirror`, { segmentBytes: 4096 });
    for (const change of recordedChanges(["fresh-start"])) await writer.append(change);
    writer.close();
    Deno.removeSync(readChain(`${dir}/mirror`).logs[1].path);
    writeLockFile(dir, { backend_url: url, mirror_urls: [mirror] });
    const startup = await openAtStart(dir);
    assert("error" in startup.backend);
    assertMatch(
      startup.backend.error,
      new RegExp(
        `^Cannot start backup: "${mirror}" is damaged: .*: with lightningd stopped, move it ` +
          `aside and remove it from backup.lock, then add a new copy with "cln-backup mirror ` +
          `NEW_URL --lightning-dir '${dir}'", then start lightningd$`,
      ),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("start-up: a damaged backup_url's advice keeps its intact mirror, never says it lags", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const url = `file://${dir}/backup`;
    const mirror = `file://${dir}/mirror`;
    const changes = recordedChanges(["fresh-start"]);
    for (const name of ["backup", "mirror"]) {
      createFileBackup(`${dir}/${name}`);
      const writer = FileBackend.open(`file://${dir}/${name}`, `${dir}/${name}`, {
        segmentBytes: 4096,
      });
      for (const change of changes) await writer.append(change);
      writer.close();
    }
    // The primary loses a log from the middle; the mirror holds every change.
    Deno.removeSync(readChain(`${dir}/backup`).logs[1].path);
    writeLockFile(dir, { backend_url: url, mirror_urls: [mirror] });
    const startup = await openAtStart(dir);
    assert("error" in startup.backend);
    const error = startup.backend.error;
    assertMatch(error, new RegExp(`^Cannot start backup: "${url}" is damaged: `));
    assert(!/lag/.test(error), error);
    assertMatch(
      error,
      new RegExp(
        `; the new backup.lock names none of the old one's copies \\(${mirror}\\), which are ` +
          `kept: add each anew with "cln-backup mirror <new url> --lightning-dir '${dir}'" ` +
          `\\(--async for an async one\\), then start lightningd$`,
      ),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("start-up: a mirror that is not there is said to be mounted, or replaced with mirror, not made with init", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lightning dir " });
  try {
    const url = `file://${dir}/backup`;
    createFileBackup(`${dir}/backup`);
    writeLockFile(dir, { backend_url: url, mirror_urls: [`file://${dir}/gone`] });
    const startup = await openAtStart(dir);
    assert("error" in startup.backend);
    assertEquals(
      startup.backend.error,
      `Cannot open backup: nothing at "${dir}/gone", a copy backup.lock names: mount its disk ` +
        `or fix the URL; or, with lightningd stopped, remove it from backup.lock, then add a ` +
        `new copy with "cln-backup mirror NEW_URL --lightning-dir '${dir}'"`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("start-up: a mirror on a file system mounted read-only is one line saying what to do", async () => {
  const dir = Deno.makeTempDirSync();
  const mount = `${dir}/disk`;
  Deno.mkdirSync(mount);
  if (!mountTmpfs(mount, "1m")) return Deno.removeSync(dir, { recursive: true });
  try {
    createFileBackup(`${dir}/backup`);
    createFileBackup(`${mount}/copy`);
    assert(run("mount", ["-o", "remount,ro", mount]), "remount read-only");
    writeLockFile(dir, {
      backend_url: `file://${dir}/backup`,
      mirror_urls: [`file://${mount}/copy`],
    });
    const startup = await openAtStart(dir);
    assert("error" in startup.backend);
    assertEquals(
      startup.backend.error,
      `Cannot start backup: read-only file system when opening "${mount}/copy/LOCK": that ` +
        `file system is mounted read-only: choose a path on another one`,
    );
  } finally {
    run("umount", [mount]);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("start-up: an async copy that stays down logs its failure in one line, its retries only at debug", async () => {
  const dir = Deno.makeTempDirSync();
  // Nothing listens there: every request of the copy is refused at once.
  const url = `s3://bucket/node?endpoint=http://127.0.0.1:${freePort()}&path-style=1`;
  const logs: { level: string; message: string }[] = [];
  let backend;
  try {
    createFileBackup(`${dir}/backup`);
    Deno.writeTextFileSync(
      `${dir}/${CREDENTIALS_FILE}`,
      "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\n",
      { mode: 0o600 },
    );
    writeLockFile(dir, {
      backend_url: `file://${dir}/backup`,
      async_urls: [url],
      s3_retries: 2,
      s3_retry_delay_s: 0.01,
      async_retry_s: 0.05,
    });
    const startup = await openAtStart(dir, {
      remoteLog: (level, message) => logs.push({ level, message }),
    });
    assert(!("error" in startup.backend), JSON.stringify(startup.backend));
    backend = startup.backend;
    await backend.append(recordedChanges(["fresh-start"])[0]);
    // Three opens, each with its two retries: an outage as the node would see it, shortened.
    const retries = () => logs.filter((l) => / again \(\d of 2\)/.test(l.message)).length;
    for (let waited = 0; retries() < 6 && waited < 600; waited++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert(retries() >= 6, JSON.stringify(logs, null, 1));
    const loud = logs.filter((l) => l.level !== "debug" && l.level !== "info");
    assertEquals(loud.length, 1, JSON.stringify(loud, null, 1));
    assertMatch(
      loud[0].message,
      /^Async destination s3:\/\/bucket\/node.* failed, the node goes on/,
    );
  } finally {
    backend?.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
