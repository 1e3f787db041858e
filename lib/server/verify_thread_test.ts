import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { makeBackup, recordedChanges } from "../../tests/support/cli_testing.ts";
import { loadFixture } from "../../tests/support/fixtures.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { verifyBackup } from "../backup/verify.ts";
import { readLayout } from "../format/layout.ts";
import { verifyOnThread } from "./verify_thread.ts";
import { ServerStorage } from "./storage.ts";

const scratch = (dir: string) =>
  [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(".verify-")).length;

Deno.test("verifyOnThread finds what verifyBackup finds, and fails as it does, leaving no scratch", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/backup`;
    const url = await makeBackup(path, recordedChanges(["fresh-start", "restart"]));
    const temp = Deno.makeTempDirSync({ dir });
    const here = verifyBackup(new FileBackupReader(url, path), temp);
    Deno.removeSync(temp, { recursive: true });
    assert(here.restoredVersion !== undefined && here.restoredVersion > 0);
    assertEquals(await verifyOnThread(url, path), here);
    assertEquals(scratch(dir), 0);
    // A damaged record in the middle of the first log.
    const log = readLayout(path).logs[0].path;
    const bytes = Deno.readFileSync(log);
    bytes[bytes.length >> 1] ^= 0xff;
    Deno.writeFileSync(log, bytes);
    let why = "";
    try {
      verifyBackup(new FileBackupReader(url, path), Deno.makeTempDirSync({ dir }));
    } catch (error) {
      why = (error as Error).message;
    }
    assert(why !== "", "the damage is found here");
    const error = await assertRejects(() => verifyOnThread(url, path));
    assertEquals(error.message, why);
    assertEquals(scratch(dir), 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a server opening a backup removes scratch a killed VERIFY left beside it", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/backup`;
    const url = await makeBackup(path, recordedChanges(["restart"]), {
      version: 11,
      path: loadFixture("fresh-start").database,
    });
    Deno.mkdirSync(`${dir}/.verify-left`);
    Deno.writeFileSync(`${dir}/.verify-left/lightningd.sqlite3`, new Uint8Array(10));
    Deno.mkdirSync(`${dir}/kept`);
    const storage = ServerStorage.open(url, path, () => {});
    storage.close();
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["backup", "kept"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
