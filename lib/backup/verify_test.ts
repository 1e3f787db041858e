import { assertEquals } from "../../tests/support/assert.ts";
import { loadFixture } from "../../tests/support/fixtures.ts";
import { makeBackup, recordedChanges } from "../../tests/support/cli_testing.ts";
import { writeBase } from "../backends/file/create.ts";
import { readChain } from "../format/chain.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import type { BackupEntry } from "../backends/backend.ts";
import { armInterrupts, INTERRUPT_SIGNALS, Interrupted } from "../fs/interrupt.ts";
import { verifyBackup } from "./verify.ts";

Deno.test("verify stops on a signal during its first pass, and while it reads an older snapshot", async () => {
  // Each pass over a base is as long as the database is large: Ctrl-C waited for its end.
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
    // SIGINT once the first pass (describe) is done, as the older snapshot is read.
    assertEquals(interruptedVerify(url, `${dir}/backup`, `${dir}/temp`, "reading"), [
      "snapshot-part",
    ]);
    // SIGINT during the first pass, which reads every record: nothing further is read.
    assertEquals(interruptedVerify(url, `${dir}/backup`, `${dir}/temp`, "at start"), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Verifies with SIGINT heard `when`; the kinds of the entries read, once it stopped. */
function interruptedVerify(
  url: string,
  path: string,
  temp: string,
  when: "at start" | "reading",
): BackupEntry["kind"][] {
  const reader = new FileBackupReader(url, path);
  const flag = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  const sigint = () => Atomics.store(flag, 0, INTERRUPT_SIGNALS.SIGINT);
  const read: BackupEntry["kind"][] = [];
  const entries = reader.entries.bind(reader);
  reader.entries = function* (toVersion?: number) {
    for (const entry of entries(toVersion)) {
      read.push(entry.kind);
      sigint();
      yield entry;
    }
  };
  if (when === "at start") sigint();
  armInterrupts(flag);
  let thrown: unknown;
  try {
    verifyBackup(reader, temp);
  } catch (error) {
    thrown = error;
  } finally {
    armInterrupts(undefined);
    reader.close();
  }
  assertEquals(thrown instanceof Interrupted, true, String(thrown));
  return read;
}
