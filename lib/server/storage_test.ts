import { assert, assertEquals } from "../../tests/support/assert.ts";
import { ServerStorage } from "./storage.ts";
import { logName } from "../format/layout.ts";

Deno.test("a restore's copy of the live log ends at its records, not in the zeros appends go to", async () => {
  const dir = Deno.makeTempDirSync();
  const storage = ServerStorage.open(`file://${dir}/node`, `${dir}/node`, () => {});
  try {
    for (let version = 1; version <= 3; version++) {
      await storage.append({ version, statements: [`SELECT ${version}`] });
    }
    const files = storage.openFiles();
    const live = files.find((f) => f.name === logName(1))!;
    // The writer appends into zeros after the records while the copy is sent: a copy of
    // the whole file could take a record's start as zeros and its end as written.
    assert(live.file.statSync().size > live.size, "zeros after the records");
    assertEquals(live.size, storage.place().offset);
    for (const { file } of files) file.close();
  } finally {
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
