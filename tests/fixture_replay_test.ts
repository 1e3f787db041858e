import { assertEquals } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { loadFixture, SCENARIOS } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { createFileBackup } from "../lib/backends/file_create.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";

Deno.test("recorded runs replay through the plugin and restore equal to the node", async () => {
  const dir = Deno.makeTempDirSync();
  const url = `file://${dir}/backup`;
  createFileBackup(`${dir}/backup`);
  writeLockFile(dir, { backend_url: url });
  for (const name of SCENARIOS) {
    const fixture = loadFixture(name);
    const node = FakeLightningd.spawn({
      lightningDir: dir,
      chunking: { kind: "sizes", sizes: fixture.chunks },
    });
    assertEquals(await node.replay(fixture.raw), "committed");
    const status = await node.close();
    assertEquals(status.code, 0);
    assertEquals(node.garbage, []);
    assertEquals(dumpDatabase(`${dir}/lightningd.sqlite3`), dumpDatabase(fixture.database));
    const restored = `${dir}/restored-${name}.sqlite3`;
    restoreBackup(openReader(url), restored);
    assertEquals(dumpDatabase(restored), dumpDatabase(fixture.database));
  }
  Deno.removeSync(dir, { recursive: true });
});
