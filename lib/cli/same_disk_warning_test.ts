import { assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "../../tests/support/cli_testing.ts";
import { warnIfSameDisk } from "./same_disk_warning.ts";
import { deviceOf } from "../backup/same_disk.ts";

/** deviceOf's own refusal, for a filesystem Deno gives no device id for. */
const untold = (path: string): number => {
  throw new Error(`cannot tell the filesystem of "${path}"`);
};

Deno.test("same-disk warning: a check that cannot be made is one Note line saying why", () => {
  const dir = makeNodeDir("fresh-start");
  try {
    const output = new BufferedOutput();
    const lock = { backend_url: `file://${dir}/../backup` };
    warnIfSameDisk(lock, dir, `${dir}/lightningd.sqlite3`, output, untold);
    assertEquals(output.stdout, []);
    assertEquals(output.stderr.length, 1, output.transcript);
    assertMatch(
      output.stderr[0],
      new RegExp(
        `^Note: cannot check that a destination outlives the disk of the node's database ` +
          `\\(cannot tell the filesystem of "${dir}/lightningd\\.sqlite3"\\): doctor checks ` +
          `it: "cln-backup doctor --lightning-dir '${dir}'"$`,
      ),
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("same-disk warning: a config that does not say where the database is is a Note", () => {
  const dir = makeNodeDir();
  try {
    Deno.writeTextFileSync(`${dir}/config`, "wallet=\n");
    const output = new BufferedOutput();
    warnIfSameDisk({ backend_url: `file://${dir}/../backup` }, dir, undefined, output, deviceOf);
    assertEquals(output.stderr.length, 1, output.transcript);
    assertMatch(
      output.stderr[0],
      /^Note: cannot check that a destination outlives the disk of the node's database \(cannot tell where the node's database is: .*config sets wallet= without a database file: .*\): doctor checks it: /,
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("same-disk warning: a remote destination outlives the disk, with no check to make", () => {
  const dir = makeNodeDir();
  try {
    Deno.writeTextFileSync(`${dir}/config`, "wallet=\n");
    for (
      const [backend_url, mirror] of [
        [`file://${dir}/../backup`, "socket:127.0.0.1:9"],
        ["s3://bucket/node", `file://${dir}/../copy`],
      ]
    ) {
      const output = new BufferedOutput();
      const lock = { backend_url, mirror_urls: [mirror] };
      warnIfSameDisk(lock, dir, undefined, output, untold);
      assertEquals(output.stderr, [], backend_url);
    }
  } finally {
    removeNodeDir(dir);
  }
});
