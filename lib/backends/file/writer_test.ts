import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { createFileBackup } from "./create.ts";
import { FileBackend } from "./writer.ts";
import { logName } from "../../format/layout.ts";
import { existsSync } from "../../fs/exists.ts";

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
