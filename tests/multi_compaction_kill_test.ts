/**
 * A plugin killed (SIGKILL) in the middle of a compaction of a backup with several
 * destinations: a file primary, an S3 mirror (Ceph RGW) and an async file copy, each killed
 * while its own compaction runs. The next start opens every destination, the node goes on,
 * the next compaction finishes what the killed one left, and every destination restores
 * equal to the node: nothing committed is lost.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { DATABASE_NAME, type FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { dumpAt } from "./support/node_at.ts";
import { rgwTest } from "./support/shared_rgw.ts";
import { CRASH_ENV } from "../lib/fs/crash_point.ts";
import {
  ACTIVITY,
  caughtUp,
  compaction,
  type DestinationStatus,
  firstRuns,
  type Json,
  RECORDED,
  restored,
  spawn,
  withNode,
  write,
} from "./support/multi_destinations.ts";

/**
 * Asks `backup-compact` and kills the plugin once `url`'s compaction is seen running; `false`
 * when the compaction ended before that was seen.
 */
async function killWhileCompacting(lightningd: FakeLightningd, url: string): Promise<boolean> {
  let answered = false;
  lightningd.request("backup-compact", []).then(() => answered = true, () => answered = true);
  while (!answered) {
    const destinations = (await compaction(lightningd)).destinations as DestinationStatus[];
    if (destinations.find((d) => d.url === url)?.running) {
      await lightningd.kill();
      return true;
    }
  }
  return false;
}

rgwTest("a plugin killed during each destination's compaction loses nothing", async () => {
  await withNode(
    (_, s3, root) => ({ mirror_urls: [s3], async_urls: [`file://${root}/copy`] }),
    async (node) => {
      await firstRuns(node);
      const part = (i: number) => Math.floor(i * ACTIVITY.length / 8);
      const chunks = [...Array(8).keys()].map((i) => ACTIVITY.slice(part(i), part(i + 1)));
      let killed = 0;
      for (const url of node.urls) {
        // Until this destination's compaction is caught running (a fast one may end first).
        for (let tries = 0; tries < 2; tries++) {
          const lightningd = spawn(node);
          await lightningd.getmanifest();
          await lightningd.init({ "backup-compact-auto": false });
          for (const change of chunks.shift()!) await write(lightningd, change);
          await caughtUp(lightningd);
          const dead = await killWhileCompacting(lightningd, url);
          if (!dead) await lightningd.stop();
          const nodeNow = dumpDatabase(`${node.dir}/${DATABASE_NAME}`);
          // The synchronous destinations hold every committed change even now.
          for (const sync of node.urls.slice(0, 2)) {
            assertEquals(await restored(node, sync), nodeNow, `${sync} after the kill`);
          }
          if (dead) {
            killed++;
            break;
          }
        }
      }
      assertEquals(killed, node.urls.length, `${killed} compactions killed`);
      // The rest of the run, a compaction that finishes, every destination equal.
      const lightningd = spawn(node);
      await lightningd.getmanifest();
      await lightningd.init({ "backup-compact-auto": false });
      for (const change of chunks.flat()) await write(lightningd, change);
      await caughtUp(lightningd);
      const answer = await lightningd.request("backup-compact", []);
      const destinations = (answer.result as Json).destinations as Json[];
      for (const d of destinations) assertEquals(d.error, null, `${d.url}: ${d.error}`);
      assertEquals((await lightningd.stop()).code, 0);
      // What the killed compactions left is gone: half-built bases, scratch files.
      for (const dir of [`${node.root}/backup`, `${node.root}/copy`]) {
        const left = [...Deno.readDirSync(dir)].filter((e) => /tmp|compacting/.test(e.name));
        assertEquals(left, [], dir);
      }
      for (const entry of Deno.readDirSync(`${node.dir}/cln-backup-scratch`)) {
        const inside = [...Deno.readDirSync(`${node.dir}/cln-backup-scratch/${entry.name}`)];
        assertEquals(inside, [], entry.name);
      }
      const now = dumpDatabase(`${node.dir}/${DATABASE_NAME}`);
      for (const url of node.urls) assertEquals(await restored(node, url), now, url);
    },
  );
});

rgwTest("a rewind at the first write while each destination compacts: restores equal", async () => {
  await withNode((_, s3) => ({ mirror_urls: [s3] }), async (node) => {
    await firstRuns(node);
    const first = spawn(node);
    await first.getmanifest();
    for (const change of ACTIVITY.slice(0, 150)) await write(first, change);
    await first.stop();
    // The plugin dies after the file primary stored a change, before anyone answered it:
    // the primary is one ahead of the node (and of S3).
    const crashing = spawn(node, { [CRASH_ENV]: "after-sync-before-answer:1" });
    await crashing.getmanifest();
    const never = ["INSERT INTO vars (name, intval) VALUES ('never-committed', 1)"];
    assertEquals(await crashing.transaction(never), "aborted");
    assertEquals((await crashing.close()).signal, "SIGKILL");

    const lightningd = spawn(node);
    await lightningd.getmanifest();
    await lightningd.init({ "backup-compact-auto": false });
    let answered = false;
    const compacting = lightningd.request("backup-compact", []);
    compacting.finally(() => answered = true);
    // The first write drops that change from the primary while the compaction runs.
    await write(lightningd, ACTIVITY[150]);
    assert(!answered, "the first write came while the compaction ran");
    const dropped = lightningd.logs.filter((l) =>
      /^dropping change \d+ from the backup/.test(l.message)
    );
    assertEquals(dropped.length, 1, "the first write rewound the primary");
    for (const change of ACTIVITY.slice(151)) await write(lightningd, change);
    for (const answer of [await compacting, await lightningd.request("backup-compact", [])]) {
      const destinations = (answer.result as Json).destinations as Json[];
      for (const d of destinations) assertEquals(d.error, null, `${d.url}: ${d.error}`);
    }
    assertEquals((await lightningd.stop()).code, 0);
    const now = dumpDatabase(`${node.dir}/${DATABASE_NAME}`);
    assertEquals(now, dumpAt(RECORDED, ACTIVITY.at(-1)!.version));
    for (const url of node.urls) assertEquals(await restored(node, url), now, url);
  });
});
