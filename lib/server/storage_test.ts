import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../tests/support/assert.ts";
import { INVOKED_AS_ENV, nameCommandsAsInvoked } from "../fs/advised_command.ts";
import { ServerStorage } from "./storage.ts";
import { logName } from "../format/layout.ts";
import { makeEncryptedBackup } from "../../tests/support/encrypted.ts";
import { bumpStatement } from "../../tests/support/statements.ts";
import { DatabaseSync } from "node:sqlite";

/** A node's database at data_version 1, as a snapshot's bytes. */
function nodeDatabase(dir: string): Uint8Array {
  const db = new DatabaseSync(`${dir}/node.sqlite3`);
  db.exec("CREATE TABLE vars (name TEXT, intval INTEGER)");
  db.exec("INSERT INTO vars VALUES ('data_version', 1)");
  db.close();
  const bytes = Deno.readFileSync(`${dir}/node.sqlite3`);
  Deno.removeSync(`${dir}/node.sqlite3`);
  return bytes;
}

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

Deno.test("a restore's copy of a live log with a torn tail ends at the tail's last byte", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/node`;
  const first = ServerStorage.open(`file://${path}`, path, () => {});
  for (let version = 1; version <= 3; version++) {
    await first.append({ version, statements: [`SELECT ${version}`] });
  }
  first.close();
  // A torn append: the start of a record, then the zeros that were written ahead of it.
  const live = `${path}/${logName(1)}`;
  const bytes = Deno.readFileSync(live);
  const file = Deno.openSync(live, { append: true });
  file.writeSync(bytes.subarray(bytes.length - 40, bytes.length - 20));
  file.writeSync(new Uint8Array(64 << 10));
  file.close();
  const storage = ServerStorage.open(`file://${path}`, path, () => {});
  try {
    const tail = storage.state().tail!;
    assertEquals([tail.offset, tail.bytes], [bytes.length, 20]);
    const files = storage.openFiles();
    assertEquals(files.find((f) => f.name === logName(1))!.size, bytes.length + 20);
    for (const { file } of files) file.close();
  } finally {
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a change whose connection closed before it is written is not stored, not a byte of it", async () => {
  const dir = Deno.makeTempDirSync();
  const storage = ServerStorage.open(`file://${dir}/node`, `${dir}/node`, () => {});
  try {
    const closing = new AbortController();
    await storage.append({ version: 1, statements: ["SELECT 1"] }, closing.signal);
    const before = storage.place();
    closing.abort();
    const dropped = await assertRejects(
      () => storage.append({ version: 2, statements: ["SELECT 2"] }, closing.signal),
    );
    assert(dropped === closing.signal.reason);
    assertEquals([storage.state().version, storage.place()], [1, before]);
  } finally {
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("describe names no wraps, and does not hang, when key.json is a FIFO", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-storage-" });
  try {
    const path = `${dir}/node`;
    await makeEncryptedBackup(path);
    const storage = ServerStorage.open(`file://${path}`, path, () => {});
    try {
      assertEquals((await storage.describe()).wrappedFor, ["passphrase"]);
      // Read as a file, a FIFO would block the server's only thread, every node's writes with it.
      Deno.removeSync(`${path}/key.json`);
      new Deno.Command("mkfifo", { args: [`${path}/key.json`] }).outputSync();
      const description = await storage.describe();
      assertEquals([description.encrypted, description.wrappedFor], [true, []]);
    } finally {
      storage.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("after a sync that failed (EIO) the backup takes no other write until the server restarts", async () => {
  const dir = Deno.makeTempDirSync();
  const storage = ServerStorage.open(`file://${dir}/node`, `${dir}/node`, () => {});
  const sync = Deno.FsFile.prototype.syncDataSync;
  try {
    await storage.append({ version: 1, statements: ["SELECT 1"] });
    // Written whole, then its fdatasync fails: the kernel may drop the record's pages while
    // reads still show them, so it may never reach the disk.
    Deno.FsFile.prototype.syncDataSync = () => {
      throw Object.assign(new Error("Input/output error (os error 5)"), { code: "EIO" });
    };
    await assertRejects(() => storage.append({ version: 2, statements: ["SELECT 2"] }));
    Deno.FsFile.prototype.syncDataSync = sync;
    // The node, restarted, sends change 2 again. Opened again, the backup would read the
    // first one from pages the disk may never hold, and go on writing on a disk that failed.
    await assertRejects(
      () => storage.append({ version: 2, statements: ["SELECT 2"] }),
      /an earlier write failed: .*Input\/output error/,
    );
  } finally {
    Deno.FsFile.prototype.syncDataSync = sync;
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a VERIFY running while the backup is opened again after a full disk reads the files it started with", async () => {
  const dir = Deno.makeTempDirSync();
  const storage = ServerStorage.open(`file://${dir}/node`, `${dir}/node`, () => {});
  const write = Deno.FsFile.prototype.writeSync;
  try {
    await storage.storeSnapshot(1, nodeDatabase(dir));
    for (let version = 2; version <= 3; version++) {
      await storage.append({ version, statements: [bumpStatement(version - 1)] });
    }
    Deno.FsFile.prototype.writeSync = () => {
      throw Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
    };
    await assertRejects(() => storage.append({ version: 4, statements: [bumpStatement(3)] }));
    Deno.FsFile.prototype.writeSync = write;
    // Room is made; the node's next change opens the backup again while a VERIFY reads it.
    const verifying = storage.verify();
    await storage.append({ version: 4, statements: [bumpStatement(3)] });
    assertEquals((await verifying).lastVersion, 4);
  } finally {
    Deno.FsFile.prototype.writeSync = write;
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a view a crash left in the backup is removed when the server opens it", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/node`;
  const first = ServerStorage.open(`file://${path}`, path, () => {});
  await first.append({ version: 1, statements: ["SELECT 1"] });
  first.close();
  Deno.mkdirSync(`${path}/view-7`);
  Deno.linkSync(`${path}/${logName(1)}`, `${path}/view-7/${logName(1)}`);
  const storage = ServerStorage.open(`file://${path}`, path, () => {});
  try {
    assertEquals([...Deno.readDirSync(path)].filter((e) => e.name.startsWith("view-")), []);
  } finally {
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("what a server tells a node names commands as the node's plugin does, not as the server was run", async () => {
  const dir = Deno.makeTempDirSync();
  await makeEncryptedBackup(`${dir}/node`);
  const storage = ServerStorage.open(`file://${dir}/node`, `${dir}/node`, () => {});
  // The server's operator ran it as "./backup-cli server ...": the node is elsewhere.
  nameCommandsAsInvoked({ get: (name) => name === INVOKED_AS_ENV ? "./backup-cli" : undefined });
  try {
    const plain = await assertRejects(() =>
      storage.append({ version: 1, statements: [bumpStatement(0)] })
    );
    assertMatch(
      (plain as Error).message,
      /put it back \("cln-backup rekey <url> --key-file <lightning-dir>"\)/,
    );
    const compact = await assertRejects(() => storage.compact());
    assertMatch((compact as Error).message, /or cln-backup compact\)/);
  } finally {
    nameCommandsAsInvoked({ get: () => undefined });
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a backup another server serves is refused naming that server, not a plugin", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/node`;
  const first = ServerStorage.open(`file://${path}`, path, () => {});
  try {
    const error = assertThrows(() => ServerStorage.open(`file://${path}`, path, () => {}));
    assertEquals(
      error.message,
      `Cannot open backup: another process is writing to "${path}" (another server serving ` +
        `it?): stop it first`,
    );
  } finally {
    first.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
