import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { ownLike } from "./owner_like.ts";

/** Owner and permission bits of the file at `path` itself. */
function owner(path: string): [number | null, number | null, number] {
  const { uid, gid, mode } = Deno.lstatSync(path);
  return [uid, gid, mode! & 0o777];
}

Deno.test("ownLike, as root, gives away no file a symlink in the backup points to", () => {
  if (Deno.uid() !== 0) return; // Only root gives files away.
  const dir = Deno.makeTempDirSync();
  try {
    // The backup directory is the plugin's user's: it can put a symlink where compact's
    // temporary file was, or make its newest log one.
    const victim = `${dir}/shadow`;
    Deno.writeFileSync(victim, new Uint8Array(), { mode: 0o600 });
    Deno.chmodSync(victim, 0o600);
    const log = `${dir}/log`;
    Deno.writeFileSync(log, new Uint8Array());
    Deno.chownSync(log, 65534, 65534);
    Deno.chmodSync(log, 0o666);
    Deno.symlinkSync(victim, `${dir}/base.tmp`);
    assertThrows(() => ownLike(`${dir}/base.tmp`, log), /symlink/);
    assertEquals(owner(victim), [0, 0, 0o600]);
    // A newest log that is a symlink lends no owner or mode (a link's bits are 0777).
    const tmp = `${dir}/trimmed.tmp`;
    Deno.writeFileSync(tmp, new Uint8Array(), { mode: 0o600 });
    Deno.chmodSync(tmp, 0o600);
    Deno.symlinkSync(victim, `${dir}/log-link`);
    assertThrows(() => ownLike(tmp, `${dir}/log-link`), /symlink/);
    assertEquals(owner(tmp), [0, 0, 0o600]);
    // A plain file takes the log's owner and mode.
    ownLike(tmp, log);
    assertEquals(owner(tmp), [65534, 65534, 0o666]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
