import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { KEY_FILE, readKeyFile, writeKeyFile } from "./key_file.ts";
import { DataKey } from "./data_key.ts";

Deno.test("key file: written 0600, read back; none is a plain backup's", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    assertEquals(await readKeyFile(dir), undefined);
    const key = await DataKey.generate();
    writeKeyFile(dir, key);
    assertEquals(Deno.statSync(`${dir}/${KEY_FILE}`).mode! & 0o777, 0o600);
    assertEquals((await readKeyFile(dir))!.bytes, key.bytes);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("key file: readable by others, a symlink, or not a key: refused in one line", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    writeKeyFile(dir, await DataKey.generate());
    const path = `${dir}/${KEY_FILE}`;
    Deno.chmodSync(path, 0o640);
    await assertRejects(
      () => readKeyFile(dir),
      /^Cannot start backup: the key file ".*backup\.key" may be read by other users \(mode 0640\): run chmod 600 ".*backup\.key"$/,
    );
    Deno.chmodSync(path, 0o600);
    Deno.renameSync(path, `${dir}/real.key`);
    Deno.symlinkSync(`${dir}/real.key`, path);
    await assertRejects(() => readKeyFile(dir), /is not a regular file \(a symlink\?\)/);
    Deno.removeSync(path);
    Deno.writeTextFileSync(path, "{}", { mode: 0o600 });
    await assertRejects(
      () => readKeyFile(dir),
      /holds no cln-backup data key: write it again/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
