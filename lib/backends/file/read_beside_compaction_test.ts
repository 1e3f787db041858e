import { assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { SCENARIOS } from "../../../tests/support/fixtures.ts";
import { recordedChanges } from "../../../tests/support/cli_testing.ts";
import { pluginBackup } from "../../../tests/support/compacting_backup.ts";
import { readChain } from "../../format/chain.ts";
import { FileBackupReader } from "./reader.ts";
import { readBesideCompaction } from "./read_beside_compaction.ts";

const CHANGES = recordedChanges(SCENARIOS);

/** A read as a reader makes it: the chain first, then its segments. */
function readSegments(dir: string, between: () => void = () => {}): number {
  const { bases, logs } = readChain(dir);
  between();
  return [...bases, ...logs].reduce((bytes, s) => bytes + Deno.readFileSync(s.path).length, 0);
}

Deno.test("a read that a compaction lands in is made again, and reads the backup after it", async () => {
  const dir = Deno.makeTempDirSync();
  const { backend, compact } = await pluginBackup(`${dir}/backup`, CHANGES.slice(0, 300));
  try {
    let reads = 0;
    const bytes = readBesideCompaction(new FileBackupReader(backend.url, backend.dir), () => {
      reads++;
      return readSegments(backend.dir, reads === 1 ? compact : undefined);
    });
    assertEquals(reads, 2);
    assertEquals(bytes, readSegments(backend.dir));
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a read that fails on segments that stayed the same fails at once; one always changed, after three", async () => {
  const dir = Deno.makeTempDirSync();
  const { backend } = await pluginBackup(`${dir}/backup`, CHANGES.slice(0, 300));
  try {
    let reads = 0;
    assertThrows(() =>
      readBesideCompaction(new FileBackupReader(backend.url, backend.dir), () => {
        reads++;
        throw new Error("damaged");
      }), /damaged/);
    assertEquals(reads, 1);
    // A new log each time (a roll): the read is given up after its third try.
    reads = 0;
    assertThrows(() =>
      readBesideCompaction(new FileBackupReader(backend.url, backend.dir), () => {
        reads++;
        Deno.writeFileSync(
          `${backend.dir}/log-0000000000000000${9000 + reads}.clnb`,
          new Uint8Array(),
        );
        throw new Error("damaged");
      }), /damaged/);
    assertEquals(reads, 3);
  } finally {
    backend.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
