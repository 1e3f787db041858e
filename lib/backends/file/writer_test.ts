import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { createFileBackup } from "./create.ts";
import { FileBackend } from "./writer.ts";
import { logName } from "../../format/layout.ts";
import { existsSync } from "../../fs/exists.ts";
import { scanSegment } from "../../format/segment.ts";
import { FileBackupReader } from "./reader.ts";
import { whileForking } from "../../../tests/support/forking.ts";

function newBackup(): { dir: string; url: string; path: string } {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup`;
  createFileBackup(path);
  return { dir, url: `file://${path}`, path };
}

const change = (version: number) => ({ version, statements: [`SELECT ${version}`] });

Deno.test("FileBackend.open refuses a log whose versions skip (lost changes)", async () => {
  const { dir, url, path } = newBackup();
  const backend = FileBackend.open(url, path);
  for (const version of [1, 2, 2, 4]) await backend.append(change(version));
  backend.close();
  await assertRejects(
    () => FileBackend.open(url, path),
    /^Cannot read backup: change 4 follows version 2 at offset \d+ of ".*log-0+1\.clnb"/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("FileBackend.open refuses a backup missing a log segment", async () => {
  const { dir, url, path } = newBackup();
  const backend = FileBackend.open(url, path, { segmentBytes: 100 });
  for (const version of [1, 2, 3, 4]) await backend.append(change(version));
  assertEquals(backend.state().version, 4);
  backend.close();
  Deno.removeSync(`${path}/${logName(2)}`);
  await assertRejects(
    () => FileBackend.open(url, path),
    /^Cannot read backup: a log segment is missing at ".*log-0+2\.clnb"; the backup is damaged/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("FileBackend.open never follows a LOCK symlink out of the backup", async () => {
  const { dir, url, path } = newBackup();
  Deno.symlinkSync(`${dir}/outside`, `${path}/LOCK`);
  await assertRejects(
    () => FileBackend.open(url, path),
    /^Cannot open backup: ".*\/LOCK" is not a regular file \(a symlink\?\): remove it/,
  );
  assertEquals(existsSync(`${dir}/outside`), false, "nothing was created outside the backup");
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("FileBackend: a write that fails names the file it failed on", async () => {
  const { dir, path } = newBackup();
  // A file size limit makes the append fail with EFBIG, as a full disk fails with ENOSPC.
  const script = `
    import { FileBackend } from ${JSON.stringify(new URL("./writer.ts", import.meta.url).href)};
    const backend = FileBackend.open("file://${path}", ${JSON.stringify(path)});
    try {
      // 200 KB of random hex: zstd packs it to about 100 KB, over the limit.
      const hex = Array.from({ length: 5 }, () =>
        Array.from(crypto.getRandomValues(new Uint8Array(20000)), (b) => b.toString(16)).join("")
      ).join("");
      await backend.append({ version: 1, statements: [hex] });
      console.log("appended");
    } catch (error) {
      console.log(error.message);
    }`;
  const child = await new Deno.Command("bash", {
    args: [
      "-c",
      'trap "" XFSZ; ulimit -f 64; exec "$0" eval --ext=js "$1"',
      Deno.execPath(),
      script,
    ],
  }).output();
  const out = new TextDecoder().decode(child.stdout).trim();
  assertEquals(
    out,
    `Cannot write backup file "${path}/${logName(1)}": File too large (os error 27): free ` +
      `space or fix the disk, then restart lightningd`,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("FileBackend: a tail is shown, not cut, on open; append waits; rewind drops it with B", async () => {
  const { dir, url, path } = newBackup();
  let backend = FileBackend.open(url, path);
  for (const version of [1, 2, 3]) await backend.append(change(version));
  backend.close();
  const log = `${path}/${logName(1)}`;
  const whole = Deno.statSync(log).size;
  Deno.writeFileSync(log, new Uint8Array(7).fill(1), { append: true });
  backend = FileBackend.open(url, path);
  assertEquals(backend.state().tail, { path: log, offset: whole, bytes: 7 });
  assertEquals(Deno.statSync(log).size, whole + 7, "open leaves the tail");
  await assertRejects(
    () => backend.append(change(4)),
    /^Cannot write backup: 7 bytes at offset \d+ of ".*" fail their checks/,
  );
  await backend.rewind();
  assertEquals([backend.state().version, backend.state().tail], [2, undefined]);
  assert(Deno.statSync(log).size < whole, "the tail went with change 3");
  await backend.append(change(3));
  backend.close();
  Deno.removeSync(dir, { recursive: true });
});

/** What a FileBackend says when its live log at `path` was removed under it. */
function removedLine(path: string, url: string, dir = "DIR"): string {
  return `Cannot write backup: "${path}" was removed while it was being written to: the ` +
    `backup is gone; with lightningd stopped, make a new one from the node's database: for ` +
    `the node's only backup, move backup.lock aside, then run "cln-backup init ` +
    `--lightning-dir ${dir} '${url}'"; for one of several destinations, remove it from backup.lock (backend_url must name ` +
    `one that holds every change), then add a new copy with "cln-backup mirror NEW_URL ` +
    `--lightning-dir ${dir}"`;
}

Deno.test("FileBackend: the plugin's backup removed under the writer names the commands with the node's lightning dir", async () => {
  const { dir, url, path } = newBackup();
  const backend = FileBackend.open(url, path, { lightningDir: "/the node's dir" });
  try {
    await backend.append(change(1));
    Deno.removeSync(path, { recursive: true });
    const error = await assertRejects(() => backend.append(change(2)));
    assertEquals(
      (error as Error).message,
      removedLine(`${path}/${logName(1)}`, url, `'/the node'\\''s dir'`),
    );
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("FileBackend: a backup directory removed under the writer refuses the next append, which stores nothing", async () => {
  const { dir, url, path } = newBackup();
  const backend = FileBackend.open(url, path);
  try {
    for (const version of [1, 2]) await backend.append(change(version));
    Deno.removeSync(path, { recursive: true });
    const before = backend.state();
    const error = await assertRejects(() => backend.append(change(3)));
    assertEquals((error as Error).message, removedLine(`${path}/${logName(1)}`, url));
    assertEquals(backend.state(), before, "change 3 is not counted as stored");
    // The failure is final, as any failed write's.
    await assertRejects(() => backend.append(change(3)), /an earlier write failed: .* removed/);
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("FileBackend: a live log removed once its directory has settled is refused at the next append", async () => {
  const { dir, url, path } = newBackup();
  const backend = FileBackend.open(url, path);
  try {
    await backend.append(change(1));
    // Past 3 s with no change to the directory, the check asks the directory (unlink_check.ts).
    await new Promise((done) => setTimeout(done, 3_100));
    await backend.append(change(2));
    const live = `${path}/${logName(1)}`;
    Deno.removeSync(live);
    const error = await assertRejects(() => backend.append(change(3)));
    assertEquals((error as Error).message, removedLine(live, url));
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("FileBackend: a live log removed under the writer is not sealed into a roll", async () => {
  const { dir, url, path } = newBackup();
  const backend = FileBackend.open(url, path, { segmentBytes: 100 });
  try {
    await backend.append(change(1));
    const live = `${path}/${logName(1)}`;
    Deno.removeSync(live);
    // Change 2 rolls: no log 2 is started after a log 1 that is gone.
    const error = await assertRejects(() => backend.append(change(2)));
    assertEquals((error as Error).message, removedLine(live, url));
    assertEquals(existsSync(`${path}/${logName(2)}`), false);
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

/** The end of the records of the segment at `path`, and its size. */
function segmentEnd(path: string): { end: number; size: number } {
  const file = Deno.openSync(path);
  try {
    const scan = scanSegment(file, path, { decode: false });
    let step = scan.next();
    while (!step.done) step = scan.next();
    assertEquals(step.value.tornBytes, 0, `${path} ends cleanly`);
    return { end: step.value.end, size: file.statSync().size };
  } finally {
    file.close();
  }
}

Deno.test("FileBackend: appends go into zeros written ahead; a sealed log and a closed one have none", async () => {
  const { dir, url, path } = newBackup();
  const backend = FileBackend.open(url, path, { segmentBytes: 64 * 1024 });
  const live = `${path}/${logName(1)}`;
  await backend.append(change(1));
  const first = segmentEnd(live);
  // Zeros to the roll (64 KiB here; 1 MiB past the record at most).
  assertEquals(first.size, 64 * 1024);
  for (let version = 2; version <= 20; version++) await backend.append(change(version));
  const twenty = segmentEnd(live);
  assert(twenty.end > first.end, "the records went into the zeros");
  assertEquals(twenty.size, first.size, "appends into zeros grow no file");
  // A roll: the sealed log ends in its seal.
  // Random text that zstd cannot shrink below the roll's 64 KiB.
  const noise = Array.from({ length: 4000 }, () => crypto.randomUUID()).join("");
  await backend.append({ version: 21, statements: [`SELECT '${noise}'`] });
  // It fills log 2 alone, past the roll: the next change goes to log 3.
  await backend.append(change(22));
  for (const log of [live, `${path}/${logName(2)}`]) {
    const sealed = segmentEnd(log);
    assertEquals(sealed.size, sealed.end, `no zeros after the seal of ${log}`);
  }
  const next = `${path}/${logName(3)}`;
  assert(segmentEnd(next).size > segmentEnd(next).end, "the next log has zeros ahead");
  const reader = new FileBackupReader(url, path);
  assertEquals(reader.describe().lastVersion, 22);
  assertEquals(reader.describe().bytes, backend.state().bytes, "zeros are not backup bytes");
  backend.close();
  assertEquals(segmentEnd(next).size, segmentEnd(next).end, "close cuts the zeros");
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("FileBackend: zeros a crash leaves are read as nothing, and appended into", async () => {
  const { dir, url, path } = newBackup();
  // A process that appends and dies without closing the backup.
  const script = `
    import { FileBackend } from ${JSON.stringify(new URL("./writer.ts", import.meta.url).href)};
    const backend = FileBackend.open("file://${path}", ${JSON.stringify(path)});
    for (const v of [1, 2, 3]) await backend.append({ version: v, statements: ["SELECT " + v] });
    Deno.exit(9);`;
  const child = await new Deno.Command(Deno.execPath(), { args: ["eval", "--ext=js", script] })
    .output();
  assertEquals(child.code, 9, new TextDecoder().decode(child.stderr));
  const live = `${path}/${logName(1)}`;
  const left = segmentEnd(live);
  assert(left.size > left.end, "the crash left zeros");
  const backend = FileBackend.open(url, path);
  assertEquals([backend.state().version, backend.state().tail], [3, undefined]);
  await backend.append(change(4));
  backend.close();
  const changes = [...new FileBackupReader(url, path).entries()].map((e) => e.version);
  assertEquals(changes, [1, 2, 3, 4]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("FileBackend: bytes another hand wrote after the records stay on close", async () => {
  const { dir, url, path } = newBackup();
  const backend = FileBackend.open(url, path);
  await backend.append(change(1));
  const live = `${path}/${logName(1)}`;
  const { size } = segmentEnd(live);
  Deno.writeFileSync(live, new Uint8Array(5).fill(0xee), { append: true });
  backend.close();
  assertEquals(Deno.statSync(live).size, size + 5);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("FileBackend: readers of a live log that a worker appends to are never fooled", async () => {
  const { dir, url, path } = newBackup();
  const source = `
    import { FileBackend } from ${JSON.stringify(new URL("./writer.ts", import.meta.url).href)};
    self.onmessage = async () => {
      const backend = FileBackend.open("file://${path}", ${JSON.stringify(path)});
      for (let v = 1; v <= 3000; v++) {
        // Sizes from a few bytes to several KiB, so reads often catch a record half written.
        const text = "x".repeat((v * 7919) % 6000);
        await backend.append({ version: v, statements: ["SELECT '" + text + "'"] });
      }
      backend.close();
      self.postMessage("done");
    };`;
  const blob = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(blob, { type: "module" });
  URL.revokeObjectURL(blob);
  let done = false;
  worker.onmessage = () => done = true;
  worker.postMessage("go");
  let reads = 0;
  let last = 0;
  try {
    while (!done) {
      const described = new FileBackupReader(url, path).describe();
      assert(described.lastVersion >= last, `version ${described.lastVersion} after ${last}`);
      last = described.lastVersion;
      reads++;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  } finally {
    worker.terminate();
  }
  assert(reads > 10 && last > 0, `${reads} reads, the last at version ${last}`);
  assertEquals(new FileBackupReader(url, path).describe().lastVersion, 3000);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("FileBackend: a reader that began before the log grew reads the record that grew it", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/backup`;
  const url = `file://${path}`;
  createFileBackup(path);
  const writer = FileBackend.open(url, path);
  let version = 1;
  const append = () =>
    writer.append({
      version: version++,
      statements: [`SELECT '${Array.from({ length: 200 }, () => crypto.randomUUID()).join("")}'`],
    });
  try {
    await append();
    const entries = new FileBackupReader(url, path).storedEntries()[Symbol.iterator]();
    assertEquals(entries.next().value?.version, 1);
    // The reader has taken the live log's size; the writer grows it with zeros and writes a
    // record that runs past that size.
    const live = `${path}/${logName(1)}`;
    const size = Deno.statSync(live).size;
    while (Deno.statSync(live).size === size) await append();
    const read: string[] = [];
    for (let entry = entries.next(); !entry.done; entry = entries.next()) {
      read.push(`${entry.value.kind} ${entry.value.version}`);
    }
    assert(
      !read.some((r) => r.startsWith("tail")),
      read.filter((r) => !r.startsWith("stored")).join(),
    );
    assertEquals(read.at(-1), `stored-change ${version - 1}`);
  } finally {
    writer.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("FileBackend: a closed backup opens again at once, though this process forks meanwhile", async () => {
  const { dir, url, path } = newBackup();
  const refused: string[] = [];
  try {
    await whileForking(async () => {
      for (let i = 0; i < 300; i++) {
        try {
          const backend = FileBackend.open(url, path);
          await new Promise((resolve) => setTimeout(resolve, 0));
          backend.close();
        } catch (error) {
          refused.push((error as Error).message);
        }
      }
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  // Released by its close alone, the lock stayed held while a child forked meanwhile lived:
  // the next open saw "another writer".
  assertEquals(refused, []);
});

Deno.test("FileBackend.close releases the write lock after a roll that failed past closing the live log", async () => {
  const { dir, url, path } = newBackup();
  const writer = JSON.stringify(new URL("./writer.ts", import.meta.url).href);
  const script = `
    import { FileBackend } from ${writer};
    const [url, path] = Deno.args;
    const backend = FileBackend.open(url, path, { segmentBytes: 100 });
    await backend.append({ version: 1, statements: ["SELECT 1"] });
    // Rolls to log 2, which is taken away while the roll is stopped: its open fails.
    try {
      await backend.append({ version: 2, statements: ["SELECT 2"] });
    } catch {
      // The roll's failure, as expected.
    }
    try {
      backend.close();
    } catch {
      // What closing a failed backend says is not the point.
    }
    const lock = Deno.openSync(path + "/LOCK", { read: true, write: true });
    console.log(lock.tryLockSync(true) ? "released" : "still held");
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script, url, path],
    env: { NO_COLOR: "1", CLN_BACKUP_SEAM: "pause@roll" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  try {
    for (;;) {
      const stat = Deno.readTextFileSync(`/proc/${child.pid}/stat`).replace(/^.*\) /s, "")[0];
      if (stat === "T") break;
      assert(stat !== "Z", "the child ended before its roll");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    Deno.removeSync(`${path}/${logName(2)}`);
    Deno.mkdirSync(`${path}/${logName(2)}`);
    child.kill("SIGCONT");
    const { stdout, stderr } = await output;
    assertEquals(
      new TextDecoder().decode(stdout).trim(),
      "released",
      new TextDecoder().decode(stderr),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
