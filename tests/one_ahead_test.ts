/**
 * The backup one change ahead of the node: the plugin stored change N, then lightningd never
 * committed it (here the plugin dies after its fsync, before it answers; a change the plugin
 * refuses after an I/O error leaves the same state). A restore gives version N, and says why
 * that is safe and what the plugin does with the node's own database.
 *
 * @module
 */
import { assertEquals } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";
import { newLightningDir } from "./support/crash_point.ts";
import { DatabaseSync } from "node:sqlite";
import { CRASH_ENV } from "../lib/fs/crash_point.ts";
import { oneAheadNote, restore } from "../lib/cli/restore.ts";
import { BufferedOutput } from "./support/cli_testing.ts";

function dataVersion(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return Number(db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get()!.intval);
  } finally {
    db.close();
  }
}

Deno.test("restore of a backup holding a change the node never committed notes it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-ahead-" });
  const url = newLightningDir(dir);
  const fresh = FakeLightningd.spawn({ lightningDir: dir });
  assertEquals(await fresh.replay(loadFixture("fresh-start").raw), "committed");
  assertEquals((await fresh.close()).code, 0);
  const node = FakeLightningd.spawn({
    lightningDir: dir,
    env: { [CRASH_ENV]: "after-sync-before-answer:1" },
  });
  await node.getmanifest();
  assertEquals(
    await node.transaction(["INSERT INTO vars (name, intval) VALUES ('never-committed', 1)"]),
    "aborted",
  );
  assertEquals((await node.close()).signal, "SIGKILL");
  const behind = dataVersion(`${dir}/lightningd.sqlite3`);

  const output = new BufferedOutput();
  assertEquals(await restore([url, `${dir}/restored.sqlite3`], output), 0);
  assertEquals(dataVersion(`${dir}/restored.sqlite3`), behind + 1);
  assertEquals(output.stdout.length, 2, output.stdout.join("\n"));
  assertEquals(output.stdout[1], oneAheadNote(behind + 1));

  // A restore to a chosen version is what was asked for: no note.
  const chosen = new BufferedOutput();
  assertEquals(
    await restore([url, `${dir}/chosen.sqlite3`, "--to-version", String(behind + 1)], chosen),
    0,
  );
  assertEquals(chosen.stdout.length, 1);
  Deno.removeSync(dir, { recursive: true });
});
