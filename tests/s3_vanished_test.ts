/**
 * Objects of a live S3 backup deleted behind the plugin's back, as a lifecycle rule expiring
 * old objects under the prefix does (its base and `backup-id` first, then packs and change
 * objects), against a real S3 server (Ceph RGW). The plugin finds it at its next pack's listing,
 * believes it once two more listings show it, says so in one line and in `backup-status`, and refuses the next change, since
 * the backup no longer restores the node; `status` names what is missing. An object named like
 * the backup's but not one is no loss: `status` reads the backup, and names it.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { status as pluginStatus } from "./support/plugin_session.ts";
import { withInitS3Node } from "./support/s3_backup.ts";
import { rgwTestInDir } from "./support/shared_rgw.ts";
import { BufferedOutput } from "./support/cli_testing.ts";
import { shellQuote } from "../lib/fs/shell_quote.ts";
import { status } from "../lib/cli/status.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";
import { idKey } from "../lib/backends/s3/keys.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import type { S3Client } from "../lib/backends/s3/client.ts";

const test = rgwTestInDir("cln-backup-s3-vanished-", { exportKeys: true });

/** The key a lifecycle rule would have deleted, of each kind: the oldest. */
const VICTIMS: Record<string, (client: S3Client) => Promise<string>> = {
  "the base": async (client) => (await listBackup(client)).find((e) => e.kind === "base")!.key,
  "the oldest pack": async (client) =>
    (await listBackup(client)).find((e) => e.kind === "pack")!.key,
  "the oldest change object": async (client) =>
    (await listBackup(client)).find((e) => e.kind === "change")!.key,
  "backup-id": (client) => Promise.resolve(idKey(client.url.prefix)),
};

/** What `status` says of the backup once each is gone. */
const STATUS: Record<string, RegExp> = {
  "the base": /version \d+ after version 0 \(record 1\), and no base before it, at ".*pack-/,
  "the oldest pack": /no object holds record 1, which comes before at ".*pack-/,
  "the oldest change object": /no object holds record \d+, which comes before at ".*change-/,
  "backup-id": /no backup at ".*" \(no node\/backup-id in/,
};

for (const [victim, find] of Object.entries(VICTIMS)) {
  test(`S3: ${victim} deleted while the node runs: the next pack finds it, the next change is refused`, async (s) => {
    await withInitS3Node(s, async (dir, url) => {
      // A loss is believed after three listings, a request's longest retry pause apart.
      writeLockFile(dir, { ...readLockFile(dir), s3_retries: 2, s3_retry_delay_s: 0.05 });
      const node = FakeLightningd.spawn({
        lightningDir: dir,
        env: { AWS_ACCESS_KEY_ID: "", CLN_BACKUP_TEST_S3_PACK_EVERY: "5" },
      });
      try {
        await node.getmanifest();
        await node.init();
        let n = 0;
        const commit = () =>
          node.transaction([`INSERT INTO vars (name, intval) VALUES ('n${n}', ${n++})`]);
        for (let i = 0; i < 20; i++) assertEquals(await commit(), "committed", node.aborted);
        const client = s.client(url);
        // A pack under way would take the oldest change object (then garbage): let it end.
        const keys = async () => (await listBackup(client)).map((e) => e.key).join();
        for (let before = ""; before !== (before = await keys());) {
          await new Promise((r) => setTimeout(r, 200));
        }
        await client.delete(await find(client));
        // Within a pack's changes (5 here, 1000 by default) a listing finds it.
        const broken = () => node.logs.filter((l) => l.level === "broken");
        for (let i = 0; i < 7 && broken().length === 0; i++) {
          assertEquals(await commit(), "committed", node.aborted);
          for (let wait = 0; wait < 20 && broken().length === 0; wait++) {
            await new Promise((r) => setTimeout(r, 25));
          }
        }
        // The doctor command it names runs as printed: it names the node's directory.
        const doctor = RegExp.escape(`cln-backup doctor --lightning-dir ${shellQuote(dir)}`);
        const lost = new RegExp(
          `^the backup in bucket ".*" at http:.* lost objects: .*: something other than ` +
            `cln-backup deletes them \\(a lifecycle rule on the bucket\\? "${doctor}" names ` +
            `one\\); the backup no longer restores the node: remove what deletes them, then ` +
            `init a new backup on a new prefix$`,
        );
        assertEquals(broken().length, 1, JSON.stringify(node.logs));
        assertMatch(broken()[0].message, lost);
        const report = pluginStatus(await node.request("backup-status", {}));
        assertEquals([report.ok, report.error], [false, broken()[0].message]);
        assertEquals((report.connection as { state: string }).state, "failed");
        assertEquals(await commit(), "aborted");
        assertEquals(broken().length, 2);
        assert(broken()[1].message.endsWith(`: ${broken()[0].message}`), broken()[1].message);
        assertEquals(
          node.logs.filter((l) => l.level === "unusual"),
          [],
          "no packing failure to retry",
        );
        assertEquals((await node.stop()).code, 0);
      } finally {
        await node.kill().catch(() => {});
      }
      const described = new BufferedOutput();
      assertEquals(await status([url], described), 1);
      assertMatch(described.stderr.join("\n"), STATUS[victim]);
    });
  });
}

test("S3: an object named like the backup's but not one: status reads the backup and names it", async (s) => {
  await withInitS3Node(s, async (_dir, url) => {
    const client = s.client(url);
    const stray = `${client.url.prefix}pack-notes.txt`;
    await client.put(stray, new Uint8Array(1));
    const described = new BufferedOutput();
    assertEquals(await status([url], described), 0, described.transcript);
    assert(
      described.stdout.includes(
        `stray:      "${stray}" is not the backup's, named like its objects: not read; remove it`,
      ),
      described.transcript,
    );
  });
});
