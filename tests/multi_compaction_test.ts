/**
 * Compaction of a backup with several destinations, with the real plugin under the fake
 * lightningd over the recorded runs, into a file backup and an S3 one (Ceph RGW), as a mirror
 * (`mirror_urls`) and as an async copy (`async_urls`): compacted by itself and on request
 * while the node commits, one destination at a time, each restoring equal to the node and to
 * a past version still held; a plugin killed (SIGKILL) in the middle of each destination's
 * compaction loses nothing.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { DATABASE_NAME } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { dumpAt } from "./support/node_at.ts";
import { rgwTest } from "./support/shared_rgw.ts";
import {
  ACTIVITY,
  caughtUp,
  firstRuns,
  type Json,
  type Node,
  RECORDED,
  restored,
  settled,
  spawn,
  withNode,
  write,
} from "./support/multi_destinations.ts";

/**
 * The activity run with automatic compaction in its first half, `backup-compact` asked every
 * 60 hooks in its second (each overlapping the hooks that follow); then every destination
 * restores equal to the node, and to a version after the last compaction.
 */
async function compactingRun(node: Node): Promise<void> {
  await firstRuns(node);
  const lightningd = spawn(node);
  await lightningd.getmanifest();
  const half = Math.floor(ACTIVITY.length / 2);
  for (const change of ACTIVITY.slice(0, 3)) await write(lightningd, change);
  await lightningd.init({ "backup-compact-min-mib": 0, "backup-compact-ratio": 20 });
  for (const [i, change] of ACTIVITY.slice(3, half).entries()) {
    await write(lightningd, change);
    if (i % 40 === 39) await settled(lightningd);
  }
  const auto = await settled(lightningd);
  assertEquals(auto.map((d) => d.url), node.urls);
  for (const destination of auto) {
    assertEquals(destination.last?.ok, true, `${destination.url}: ${JSON.stringify(destination)}`);
    assert(typeof destination.next_due_at_bytes === "number", "the next one is due by size");
  }
  const byItself = lightningd.logs.filter((l) => l.message.startsWith("compacted the backup by"));
  assert(byItself.length > 0, "the plugin compacted by itself");

  await lightningd.request("setconfig", { config: "backup-compact-auto", val: "false" });
  const results: Json[] = [];
  let pending: Promise<Json> | undefined;
  let overlapped = 0;
  const twice: unknown[][] = [];
  const rest = ACTIVITY.slice(half, -20);
  for (const [i, change] of rest.entries()) {
    if (i % 60 === 10) {
      if (pending) results.push(await pending);
      // A second call while it runs joins it.
      const [a, b] = [
        lightningd.request("backup-compact", []),
        lightningd.request("backup-compact", []),
      ];
      pending = Promise.all([a, b]).then(([x, y]) => {
        twice.push([x.result, y.result]);
        return x;
      });
    }
    let answered = false;
    pending?.then(() => answered = true);
    await write(lightningd, change);
    if (pending && !answered) overlapped++;
  }
  if (pending) results.push(await pending);
  assert(results.length >= 3, `${results.length} compactions`);
  for (const [x, y] of twice) assertEquals(x, y, "a second call joins the running one");
  assert(overlapped > 0, "hooks were answered while a compaction ran");
  for (const answer of results) {
    assert(answer.result, `backup-compact failed: ${JSON.stringify(answer.error)}`);
    const result = answer.result as Json;
    assertEquals(Object.keys(result).slice(0, 2), ["before", "after"]);
    const destinations = result.destinations as Json[];
    assertEquals(destinations.map((d) => d.url), node.urls);
    for (const d of destinations) assertEquals(d.error, null, `${d.url}: ${d.error}`);
    const { destinations: _, ...primary } = result;
    assertEquals(destinations[0].result, primary, "the fields are the primary's");
  }
  // A version after the last compaction, still held by every destination.
  const past = ACTIVITY.at(-20)!.version;
  for (const change of ACTIVITY.slice(-20)) await write(lightningd, change);
  await caughtUp(lightningd);
  await settled(lightningd);
  assertEquals((await lightningd.stop()).code, 0);

  const now = dumpDatabase(`${node.dir}/${DATABASE_NAME}`);
  assertEquals(now, dumpAt(RECORDED, ACTIVITY.at(-1)!.version));
  const then = dumpAt(RECORDED, past);
  for (const url of node.urls) {
    assertEquals(await restored(node, url), now, url);
    assertEquals(await restored(node, url, past), then, `${url} at ${past}`);
  }
}

const test = rgwTest;

test("file and S3 mirrors: compacted by themselves and on request while the node commits; restores equal", async () => {
  await withNode((_, s3) => ({ mirror_urls: [s3] }), compactingRun);
});

test("file primary and async S3 copy: both compacted while the node commits; restores equal", async () => {
  await withNode((_, s3) => ({ async_urls: [s3] }), compactingRun);
});
