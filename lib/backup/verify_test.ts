import { assertEquals } from "../../tests/support/assert.ts";
import { loadFixture } from "../../tests/support/fixtures.ts";
import { makeBackup, recordedChanges } from "../../tests/support/cli_testing.ts";
import { writeBase } from "../backends/file/create.ts";
import { readChain } from "../format/chain.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import type { BackupEntry } from "../backends/backend.ts";
import { armInterrupts, INTERRUPT_SIGNALS, Interrupted } from "../fs/interrupt.ts";
import { verifyBackup } from "./verify.ts";

Deno.test("verify stops on a signal while it reads an older snapshot, not at its end", async () => {
  // An older base is as large as the database: Ctrl-C waited for all of it to be read.
  const dir = Deno.makeTempDirSync();
  try {
    const url = await makeBackup(`${dir}/backup`, recordedChanges(["restart"]), {
      version: 11,
      path: loadFixture("fresh-start").database,
    });
    writeBase(
      `${dir}/backup`,
      { version: 15, path: loadFixture("restart").database },
      { backupId: readChain(`${dir}/backup`).backupId, firstLog: 1 },
    );
    Deno.mkdirSync(`${dir}/temp`);
    const reader = new FileBackupReader(url, `${dir}/backup`);
    const read: BackupEntry["kind"][] = [];
    const entries = reader.entries.bind(reader);
    reader.entries = function* (toVersion?: number) {
      for (const entry of entries(toVersion)) {
        read.push(entry.kind);
        yield entry;
      }
    };
    const flag = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
    Atomics.store(flag, 0, INTERRUPT_SIGNALS.SIGINT);
    armInterrupts(flag);
    let thrown: unknown;
    try {
      verifyBackup(reader, `${dir}/temp`);
    } catch (error) {
      thrown = error;
    } finally {
      armInterrupts(undefined);
      reader.close();
    }
    assertEquals(thrown instanceof Interrupted, true, String(thrown));
    assertEquals(read, ["snapshot-part"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
