import { assertEquals } from "../../tests/support/assert.ts";
import { sharedDirectory } from "./root_only.ts";

Deno.test("sharedDirectory names the first directory another user can change, through symlinks too", () => {
  if (Deno.uid() !== 0) return; // Owners other than root are made by root.
  const dir = Deno.makeTempDirSync(); // Root's 0700, in a sticky /tmp.
  try {
    Deno.mkdirSync(`${dir}/root/backup`, { recursive: true });
    assertEquals(sharedDirectory(`${dir}/root/backup`), undefined);
    Deno.chmodSync(`${dir}/root`, 0o775);
    assertEquals(sharedDirectory(`${dir}/root/backup`), { path: `${dir}/root`, uid: 0 });
    Deno.chmodSync(`${dir}/root`, 0o1777);
    assertEquals(sharedDirectory(`${dir}/root/backup`), undefined);
    // A link in a directory of the plugin's user: that user can point it elsewhere.
    Deno.mkdirSync(`${dir}/user`);
    Deno.chownSync(`${dir}/user`, 65534, 65534);
    Deno.symlinkSync(`${dir}/root/backup`, `${dir}/user/backup`);
    assertEquals(sharedDirectory(`${dir}/user/backup`), { path: `${dir}/user`, uid: 65534 });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
