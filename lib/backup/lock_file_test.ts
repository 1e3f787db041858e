import { assertEquals } from "../../tests/support/assert.ts";
import { LOCK_FILE, readLockFile, writeLockFile } from "./lock_file.ts";

Deno.test("backup.lock rewritten keeps its keys, mode and owner: lightningd's user still reads it", () => {
  const dir = Deno.makeTempDirSync({ prefix: "lock-file-" });
  const path = `${dir}/${LOCK_FILE}`;
  try {
    Deno.writeTextFileSync(path, JSON.stringify({ backend_url: "file:///b", other: [1] }));
    Deno.chmodSync(path, 0o640);
    // `mirror` run as root on a node that runs as its own user (65534 plays it).
    const root = Deno.uid() === 0;
    if (root) Deno.chownSync(path, 65534, 65534);
    writeLockFile(dir, { ...readLockFile(dir), backup_ids: { "file:///c": "ab".repeat(16) } });
    assertEquals(readLockFile(dir), {
      backend_url: "file:///b",
      other: [1],
      backup_ids: { "file:///c": "ab".repeat(16) },
    });
    const info = Deno.statSync(path);
    assertEquals(info.mode! & 0o777, 0o640);
    if (root) assertEquals([info.uid, info.gid], [65534, 65534]);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), [LOCK_FILE]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
