/**
 * `compact s3://...` from the CLI beside a running plugin writing the same prefix: alone,
 * and at the same time as the plugin's own `backup-compact`. Whichever compaction fails,
 * every committed change restores and the backup takes changes after.
 *
 * @module
 */
import { assert, assertEquals } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { restoredFromS3 } from "./support/rgw.ts";
import { runCompact, withInitS3Node } from "./support/s3_backup.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { FakeLightningd, throughLauncher } from "./support/fake_lightningd.ts";

rgwTest("S3 compaction: the CLI's beside the plugin's writer and its own compaction", async () => {
  const s = sharedRgw();
  await withInitS3Node(s, async (dir, url) => {
    const lightningd = FakeLightningd.spawn({
      lightningDir: dir,
      ...throughLauncher(dir),
      env: { ...throughLauncher(dir).env, CLN_BACKUP_TEST_S3_PACK_EVERY: "20" },
    });
    const cli = () => runCompact(s, url, "--json");
    try {
      await lightningd.getmanifest();
      await lightningd.init();
      let i = 0;
      const commit = async () =>
        assertEquals(
          await lightningd.transaction([
            `INSERT INTO vars (name, intval) VALUES ('n${i}', ${i++})`,
          ]),
          "committed",
          lightningd.aborted,
        );
      const whileCommitting = async <T>(work: Promise<T>): Promise<T> => {
        let done = false;
        work.finally(() => done = true).catch(() => {});
        let during = 0;
        for (; !done; during++) await commit();
        assert(during > 0, "changes were committed while compacting");
        return await work;
      };
      for (let n = 0; n < 150; n++) await commit();
      // (a) the CLI's alone, the plugin writing and packing (every 20 change objects).
      for (let round = 0; round < 2; round++) {
        const alone = await whileCommitting(cli());
        assertEquals(alone.code, 0, alone.stderr);
        for (let n = 0; n < 60; n++) await commit();
      }
      // (b) the CLI's and the plugin's at once: one may fail (the other's base is newer, or
      // its upload was aborted), before it deletes anything.
      for (let round = 0; round < 3; round++) {
        const [plugin, byCli] = await whileCommitting(
          Promise.all([lightningd.request("backup-compact", {}), cli()]),
        );
        assert(plugin.result !== undefined || byCli.code === 0, JSON.stringify(plugin));
        for (let n = 0; n < 60; n++) await commit();
      }
      assertEquals((await lightningd.stop()).code, 0);
      assertEquals(lightningd.logs.filter((l) => l.level === "broken"), []);
    } finally {
      await lightningd.kill().catch(() => {});
    }
    assertEquals(await restoredFromS3(s, url, dir), dumpDatabase(`${dir}/lightningd.sqlite3`));
  });
});
