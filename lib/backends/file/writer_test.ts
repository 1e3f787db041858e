import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { createFileBackup } from "./create.ts";
import { FileBackend } from "./writer.ts";
import { logName } from "../../format/layout.ts";

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
