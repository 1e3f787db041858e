import { assertEquals, assertMatch, assertThrows } from "../../tests/support/assert.ts";
import { makeNodeDir, otherDiskAt, removeNodeDir } from "../../tests/support/cli_testing.ts";
import { deviceOf, diesWithDisk, diskSpread, sameDiskWarning } from "./same_disk.ts";

async function withNode(test: (dir: string, base: string) => void): Promise<void> {
  const dir = makeNodeDir("fresh-start");
  try {
    test(dir, Deno.realPathSync(`${dir}/..`));
  } finally {
    removeNodeDir(dir);
  }
  await Promise.resolve();
}

Deno.test("same disk: a file backup beside the database dies with its disk, named with it", () =>
  withNode((dir, base) => {
    const database = `${dir}/lightningd.sqlite3`;
    // Not made yet: judged by the nearest directory above it.
    const spread = diskSpread([`file://${base}/backups/node`], database, deviceOf);
    assertEquals(spread, {
      database,
      near: database,
      sameDisk: [`${base}/backups/node`],
      elsewhere: [],
    });
    assertEquals(diesWithDisk(spread), true);
    assertMatch(
      sameDiskWarning(spread, dir, false),
      new RegExp(
        `^the backup "${base}/backups/node" is on the same filesystem as the node's ` +
          `database "${database}": one disk failure loses both: .*another disk.*remote.*mirror`,
      ),
    );
  }));

Deno.test("same disk: one destination elsewhere, a copy sync or async, remote or on another filesystem, saves the set", () =>
  withNode((dir, base) => {
    const database = `${dir}/lightningd.sqlite3`;
    const primary = `file://${base}/backup`;
    Deno.mkdirSync(`${base}/mnt`); // Another disk's mount point.
    const other = otherDiskAt(`${base}/mnt`);
    for (
      const [copy, device] of [
        [`file://${base}/mnt/copy`, other],
        ["socket:backup.example:1234", deviceOf],
        ["s3://bucket/node1", deviceOf],
      ] as const
    ) {
      const spread = diskSpread([primary, copy], database, device);
      assertEquals(spread.sameDisk, [`${base}/backup`]);
      assertEquals(spread.elsewhere, [copy]);
      assertEquals(diesWithDisk(spread), false, copy);
    }
    // The primary elsewhere saves a copy beside the database too.
    const spread = diskSpread([`file://${base}/mnt/b`, `file://${base}/c`], database, other);
    assertEquals(diesWithDisk(spread), false);
    // Every destination on the database's disk: each is named.
    const all = diskSpread([primary, `file://${base}/c1`, `file://${base}/c2`], database, other);
    assertEquals(diesWithDisk(all), true);
    assertMatch(
      sameDiskWarning(all, dir, false),
      new RegExp(
        `^the backup "${base}/backup" and its copies "${base}/c1", "${base}/c2" are on the ` +
          `same filesystem as the node's database .*: one disk failure loses them all`,
      ),
    );
  }));

Deno.test("same disk: with no database yet, its directory; a remote set asks no filesystem", () =>
  withNode((dir, base) => {
    Deno.removeSync(`${dir}/lightningd.sqlite3`);
    const database = `${dir}/lightningd.sqlite3`;
    const spread = diskSpread([`file://${base}/backup`], database, deviceOf);
    assertEquals(spread.near, dir);
    assertMatch(
      sameDiskWarning(spread, dir, false),
      new RegExp(`same filesystem as "${dir}", where the node's database will be`),
    );
    const failing = () => {
      throw new Error("no filesystem to tell");
    };
    assertEquals(
      diesWithDisk(diskSpread(["s3://bucket/node1"], database, failing)),
      false,
    );
    assertThrows(() => diskSpread([`file://${base}/backup`], database, failing));
  }));
