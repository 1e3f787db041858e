import { assert, assertMatch, assertThrows } from "../../../tests/support/assert.ts";
import { createFileBackup } from "./create.ts";
import { FileBackupReader } from "./reader.ts";
import { logName } from "../../format/layout.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../../format/record.ts";
import { CorruptBackupError, MOST_ZERO_BYTES } from "../../format/segment.ts";

Deno.test("FileBackupReader: a live log grown to a terabyte of zeros is refused at once, not read for an hour", () => {
  const parent = Deno.makeTempDirSync();
  try {
    const dir = `${parent}/backup`;
    createFileBackup(dir);
    const path = `${dir}/${logName(1)}`;
    const log = Deno.openSync(path, { write: true, append: true });
    log.writeSync(encodeRecord(RecordKind.Change, 1, encodeStatements(["SELECT 1"])));
    // A sparse copy, or a file system's damage: a size no writer leaves, all but the first
    // bytes a hole. Read 64 KiB at a time from the end, it would take about half an hour.
    log.truncateSync(2 ** 40);
    log.close();
    const reader = new FileBackupReader(`file://${dir}`, dir);
    const started = performance.now();
    const error = assertThrows(() => reader.describe());
    assert(error instanceof CorruptBackupError);
    assertMatch(
      error.message,
      new RegExp(
        `^Cannot read backup: more than ${MOST_ZERO_BYTES} zero bytes up to the end of the ` +
          `file \\(${2 ** 40} bytes\\), .* at offset \\d+ of "${path}"; the backup is damaged`,
      ),
    );
    assertThrows(() => [...reader.entries()], /more than \d+ zero bytes/);
    assert(performance.now() - started < 30_000);
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});
