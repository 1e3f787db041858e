import { assert, assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { NodeRegistry } from "./nodes.ts";
import { keyToText } from "../wire/handshake.ts";

/** The paths `run` fsyncs (files and directories alike), in order. */
function syncedBy(run: () => void): string[] {
  const synced: string[] = [];
  const paths = new WeakMap<Deno.FsFile, string>();
  const openSync = Deno.openSync;
  const { syncSync, syncDataSync } = Deno.FsFile.prototype;
  Deno.openSync = (path, options) => {
    const file = openSync(path, options);
    paths.set(file, String(path));
    return file;
  };
  Deno.FsFile.prototype.syncSync = function () {
    synced.push(paths.get(this) ?? "?");
    return syncSync.call(this);
  };
  Deno.FsFile.prototype.syncDataSync = function () {
    synced.push(paths.get(this) ?? "?");
    return syncDataSync.call(this);
  };
  try {
    run();
  } finally {
    Deno.openSync = openSync;
    Object.assign(Deno.FsFile.prototype, { syncSync, syncDataSync });
  }
  return synced;
}

Deno.test("a node's key is durable before add-node prints it, and its removal before remove-node says so", () => {
  const root = Deno.makeTempDirSync({ prefix: "nodes-" });
  try {
    const nodes = new NodeRegistry(root);
    // Printed once: lost to a crash, the node's credential would match no key; the file
    // comes back empty at worst (ext4's delayed allocation), and the node is refused.
    const added = syncedBy(() => nodes.add("alice"));
    for (
      const path of [
        `${root}/nodes/alice/key.creating-${Deno.pid}`,
        `${root}/nodes/alice`,
        `${root}/nodes`,
      ]
    ) {
      assert(added.includes(path), `${path} not synced: ${JSON.stringify(added)}`);
    }
    assertEquals(Deno.statSync(`${root}/nodes/alice/key`).mode! & 0o777, 0o600);
    // A revoked key back after a crash would let the node it was taken from in again.
    const removed = syncedBy(() => nodes.remove("alice"));
    assert(removed.includes(`${root}/nodes/alice`), `not synced: ${JSON.stringify(removed)}`);
    assertEquals(nodes.key("alice"), undefined);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("add-node refused for another user's root keeps a node another add-node made meanwhile", () => {
  if (Deno.uid() !== 0) return; // Needs chown to play the server's user.
  const root = Deno.makeTempDirSync({ prefix: "nodes-" });
  const mkdirSync = Deno.mkdirSync;
  try {
    Deno.chownSync(root, 4321, 4321);
    // The root's owner adds bob between this add-node's look at the root and its mkdir.
    let raced = false;
    Deno.mkdirSync = (path, options) => {
      if (!raced && String(path) === `${root}/nodes`) {
        raced = true;
        mkdirSync(`${root}/nodes/bob`, { recursive: true, mode: 0o700 });
        Deno.writeTextFileSync(`${root}/nodes/bob/key`, "bob's\n", { mode: 0o600 });
      }
      return mkdirSync(path, options);
    };
    assertThrows(() => new NodeRegistry(root).add("alice"), /belongs to user 4321/);
    assert(raced);
    assertEquals(Deno.readTextFileSync(`${root}/nodes/bob/key`), "bob's\n");
    assertEquals([...Deno.readDirSync(`${root}/nodes`)].map((e) => e.name), ["bob"]);
  } finally {
    Deno.mkdirSync = mkdirSync;
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("add-node cut short by a full disk leaves no key file: run again, it adds the node", () => {
  const root = Deno.makeTempDirSync({ prefix: "nodes-" });
  const { writeSync } = Deno.FsFile.prototype;
  try {
    const nodes = new NodeRegistry(root);
    Deno.FsFile.prototype.writeSync = () => {
      throw Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
    };
    assertThrows(() => nodes.add("alice"), /no space left on device: free room on that disk/);
    Deno.FsFile.prototype.writeSync = writeSync;
    // Nor the directories it made for it.
    assertEquals([...Deno.readDirSync(root)], []);
    // A key file left empty would refuse the node as a wrong credential, and this add-node
    // as a node that exists already.
    assertEquals(nodes.list(), []);
    const key = nodes.add("alice");
    assertEquals(keyToText(nodes.key("alice")!), key);
    assertEquals(Deno.statSync(`${root}/nodes/alice/key`).mode! & 0o777, 0o600);
    assertEquals([...Deno.readDirSync(`${root}/nodes/alice`)].map((e) => e.name), ["key"]);
    assertThrows(() => nodes.add("alice"), /node "alice" exists already: remove it first/);
    assertEquals(keyToText(nodes.key("alice")!), key);
  } finally {
    Deno.FsFile.prototype.writeSync = writeSync;
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("add-node's key work file is never readable by others, not even before its chmod", () => {
  // In a node directory an operator made (mkdir -p, umask 022) others may reach it: one who
  // opened it while it was 0644 would read the key written into it afterwards.
  const root = Deno.makeTempDirSync({ prefix: "nodes-" });
  const umask = Deno.umask(0o022);
  const { lockSync } = Deno.FsFile.prototype;
  const modes: number[] = [];
  try {
    Deno.mkdirSync(`${root}/nodes/alice`, { recursive: true, mode: 0o755 });
    Deno.FsFile.prototype.lockSync = function (exclusive?: boolean) {
      modes.push(this.statSync().mode! & 0o777);
      return lockSync.call(this, exclusive);
    };
    new NodeRegistry(root).add("alice");
    assertEquals(modes, [0o600]);
  } finally {
    Deno.FsFile.prototype.lockSync = lockSync;
    Deno.umask(umask);
    Deno.removeSync(root, { recursive: true });
  }
});
