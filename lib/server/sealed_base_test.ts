/**
 * A node's sealed base (a compaction of an encrypted server backup) and the log it continues
 * in: a node binds it to the base's records, so the server checks it; a node from before bases
 * bound it leaves it to the server, which writes it.
 */
import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { makeEncryptedBackup, sealBaseAsBefore } from "../../tests/support/encrypted.ts";
import { ServerStorage } from "./storage.ts";
import { layOutChange } from "../backends/socket/sealed_layout.ts";
import { writeBase } from "../backends/file/create.ts";
import { readChain } from "../format/chain.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { baseName } from "../format/layout.ts";
import type { DataKey } from "../crypto/data_key.ts";

/** An encrypted server backup at version 2 in log 1, and a base at version 1 naming `firstLog`. */
async function withBase(
  body: (storage: ServerStorage, upload: string, key: DataKey, dir: string) => Promise<void>,
  firstLog: number,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "sealed-base-" });
  const key = await makeEncryptedBackup(`${dir}/node`);
  const storage = ServerStorage.open(`file://${dir}/node`, `${dir}/node`, () => {});
  try {
    for (const version of [1, 2]) {
      const change = { version, statements: [`SELECT ${version}`] };
      await storage.appendSealed(layOutChange(key, storage.place(), change, version - 1).packet);
    }
    Deno.writeFileSync(`${dir}/db`, new Uint8Array(3000).fill(7));
    writeBase(dir, { version: 1, path: `${dir}/db` }, {
      backupId: storage.place().backupId,
      firstLog,
      key,
    });
    const upload = storage.uploadPath(1);
    Deno.copyFileSync(`${dir}/${baseName(1)}`, upload);
    await body(storage, upload, key, dir);
  } finally {
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("a sealed base that binds another log than the server's is refused", async () => {
  await withBase(async (storage, upload, _key, dir) => {
    await assertRejects(
      () => storage.swapBase(upload),
      /a base at version 1 that continues in log 2, where this backup continues from that version in log 1/,
    );
    assertEquals(readChain(`${dir}/node`).bases, []);
  }, 2);
});

Deno.test("a sealed base from a node before bases bound their log gets the server's", async () => {
  await withBase(async (storage, upload, key, dir) => {
    sealBaseAsBefore(upload, key, 5);
    await storage.swapBase(upload);
    const [base] = readChain(`${dir}/node`).bases;
    assertEquals([base.header.firstLog, base.header.firstLogBound], [1, undefined]);
    // Its records still open under the header the server rewrote.
    const reader = new FileBackupReader(`file://${dir}/node`, `${dir}/node`, { key });
    const kinds = [...reader.storedEntries()].map((entry) => `${entry.kind} ${entry.version}`);
    assertEquals(kinds, ["snapshot-part 1", "snapshot-end 1", "stored-change 2"]);
  }, 1);
});
