/**
 * ServerStorage's writes against the sending connection closing while they await (a
 * takeover, remove-node, SIGTERM): each is dropped, the backup as it was, so a close lands
 * before the write or after all of it. Each write is started, its connection closed while
 * the write awaits, then awaited.
 */
import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { CHEAP_SCRYPT, makeEncryptedBackup, PASSPHRASE } from "../../tests/support/encrypted.ts";
import { ServerStorage } from "./storage.ts";
import { layOutChange } from "../backends/socket/sealed_layout.ts";
import { copyEncrypted } from "../backends/file/encrypted_copy.ts";
import { SNAPSHOT_PART_BYTES, writeBase } from "../backends/file/create.ts";
import { DataKey } from "../crypto/data_key.ts";
import { wrapKey, WRAPPED_KEY_NAME } from "../crypto/wrapped_key.ts";
import { baseName, readLayout } from "../format/layout.ts";
import { newBackupId } from "../format/segment.ts";
import { existsSync } from "../fs/exists.ts";

/** Runs `body` on a fresh directory: a scratch dir in it, the node's backup at `node`. */
async function inTemp(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "storage-closed-" });
  try {
    await body(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function open(dir: string): ServerStorage {
  return ServerStorage.open(`file://${dir}/node`, `${dir}/node`, () => {});
}

/** Starts `write`, closes its connection while it awaits, and checks it was dropped. */
async function droppedOnClose(write: (closed: AbortSignal) => Promise<unknown>): Promise<void> {
  const closing = new AbortController();
  const writing = write(closing.signal);
  closing.abort();
  const dropped = await assertRejects(() => writing);
  assert(dropped === closing.signal.reason, `dropped as closed, not: ${dropped}`);
}

/** A database file of `bytes`, in parts enough for a base written part by part. */
function database(path: string, bytes: number): string {
  Deno.writeFileSync(path, new Uint8Array(bytes).fill(7));
  return path;
}

/** A new data key, wrapped for a new backup id. */
async function newKey() {
  const key = await DataKey.generate();
  const backupId = newBackupId();
  const wrappedKey = await wrapKey(key, backupId, { passphrase: PASSPHRASE }, CHEAP_SCRYPT);
  return { key, backupId, wrappedKey, owner: { backupId, keyId: key.id } };
}

Deno.test("a sealed change whose connection closed is not stored, nor is the seal that rolls the log", async () => {
  await inTemp(async (dir) => {
    const key = await makeEncryptedBackup(`${dir}/node`);
    const storage = open(dir);
    try {
      const first = layOutChange(key, storage.place(), { version: 1, statements: ["SELECT 1"] }, 0);
      await storage.appendSealed(first.packet, new AbortController().signal);
      const before = storage.place();
      const rolling = { version: 2, statements: ["SELECT 2"] };
      const second = layOutChange(key, before, rolling, 1, undefined, true);
      await droppedOnClose((closed) => storage.appendSealed(second.packet, closed));
      assertEquals([storage.state().version, storage.place()], [1, before]);
    } finally {
      storage.close();
    }
  });
});

Deno.test("a snapshot whose connection closes while its base is written leaves no base", async () => {
  await inTemp(async (dir) => {
    const storage = open(dir);
    try {
      const db = database(`${dir}/db`, 2 * SNAPSHOT_PART_BYTES + 10);
      await droppedOnClose((closed) => storage.storeSnapshotFile(4, db, closed));
      assertEquals(readLayout(`${dir}/node`).bases, []);
      assertEquals([...Deno.readDirSync(`${dir}/node`)].filter((e) => e.name.endsWith(".tmp")), []);
      // Nothing of it is in the way of the next snapshot.
      await storage.storeSnapshotFile(4, db);
      assertEquals(storage.state().version, 4);
    } finally {
      storage.close();
    }
  });
});

Deno.test("an encrypted init whose connection closes while its base is checked leaves the backup plain and empty", async () => {
  await inTemp(async (dir) => {
    const storage = open(dir);
    try {
      const { key, backupId, wrappedKey } = await newKey();
      writeBase(dir, { version: 3, path: database(`${dir}/db`, 3000) }, {
        backupId,
        firstLog: 1,
        key,
      });
      const upload = storage.uploadPath(1);
      Deno.copyFileSync(`${dir}/${baseName(3)}`, upload);
      await droppedOnClose((closed) => storage.initSealedFile(wrappedKey, upload, closed));
      assertEquals([storage.state().encrypted, storage.state().version], [undefined, 0]);
      assert(!existsSync(`${dir}/node/${WRAPPED_KEY_NAME}`) && !existsSync(upload));
      assertEquals(readLayout(`${dir}/node`).bases, []);
    } finally {
      storage.close();
    }
  });
});

Deno.test("a sealed base whose connection closes while it is checked is not swapped in", async () => {
  await inTemp(async (dir) => {
    const key = await makeEncryptedBackup(`${dir}/node`);
    const storage = open(dir);
    try {
      for (const version of [1, 2]) {
        const change = { version, statements: [`SELECT ${version}`] };
        await storage.appendSealed(layOutChange(key, storage.place(), change, version - 1).packet);
      }
      const { backupId } = storage.place();
      writeBase(dir, { version: 1, path: database(`${dir}/db`, 3000) }, {
        backupId,
        firstLog: 1,
        key,
      });
      const upload = storage.uploadPath(1);
      Deno.copyFileSync(`${dir}/${baseName(1)}`, upload);
      await droppedOnClose((closed) => storage.swapBase(upload, closed));
      assertEquals(readLayout(`${dir}/node`).bases, []);
      assert(!existsSync(upload));
      assertEquals(storage.state().version, 2);
    } finally {
      storage.close();
    }
  });
});

Deno.test("an encrypted copy whose connection closes while it is checked is not swapped in", async () => {
  await inTemp(async (dir) => {
    const storage = open(dir);
    try {
      await storage.append({ version: 1, statements: ["SELECT 1"] });
      const { key, backupId, wrappedKey, owner } = await newKey();
      const { staging } = storage.beginUpgrade(1, wrappedKey);
      copyEncrypted(`${dir}/node`, staging, { key, backupId, wrappedKey });
      await droppedOnClose((closed) => storage.commitUpgrade(owner, 1, closed));
      assertEquals(storage.state().encrypted, undefined);
      // The copy itself would go in: only the close kept it out.
      assertEquals(await storage.commitUpgrade(owner, 1), 1);
      assertEquals(storage.state().encrypted, true);
    } finally {
      storage.abandonUpgrade();
      storage.close();
    }
  });
});
