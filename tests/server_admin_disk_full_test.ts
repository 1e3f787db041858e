/**
 * `server add-node` and `server init-tls` on a full disk fail in one line saying what to do,
 * and leave nothing they made: an empty root left behind would pass for a server's, a lone
 * TLS key for a certificate's. Needs root to mount a tmpfs; elsewhere it says so and skips.
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { mountTmpfs, run } from "./support/tmpfs.ts";
import { server } from "../lib/cli/server.ts";
import { BufferedOutput } from "./support/cli_testing.ts";

/** Runs `body` on a tmpfs of 16 pages at `mount`, all but `free` of them filled. */
async function onFullDisk(free: number, body: (mount: string) => Promise<void>): Promise<void> {
  const work = Deno.makeTempDirSync({ prefix: "cln-backup-admin-full-" });
  const mount = `${work}/small`;
  Deno.mkdirSync(mount);
  try {
    if (!mountTmpfs(mount, 16 * 4096)) return;
    // A directory goes in all the same (tmpfs counts their entries in no page), a file's
    // bytes do not.
    Deno.writeFileSync(`${mount}/fill`, new Uint8Array((16 - free) * 4096));
    await body(mount);
  } finally {
    run("umount", [mount]);
    Deno.removeSync(work, { recursive: true });
  }
}

Deno.test("add-node on a full disk says so, and leaves no root, nodes or node directory", async () => {
  await onFullDisk(0, async (mount) => {
    const output = new BufferedOutput();
    assertEquals(await server(["add-node", `${mount}/root`, "alice"], output), 1);
    assertEquals(output.stdout, []);
    assertMatch(
      output.stderr.join("\n"),
      /^Cannot add node: cannot write ".*\/root\/nodes\/alice\/key": no space left on device: free room on that disk, then run add-node again$/,
    );
    assertEquals([...Deno.readDirSync(mount)].map((entry) => entry.name), ["fill"]);
  });
});

Deno.test("init-tls with room for its key but not its certificate says so, and leaves neither", async () => {
  await onFullDisk(1, async (mount) => {
    const output = new BufferedOutput();
    assertEquals(await server(["init-tls", `${mount}/root`], output), 1);
    assertEquals(output.stdout, []);
    assertMatch(
      output.stderr.join("\n"),
      /^Cannot make the TLS certificate: cannot write ".*\/root\/tls\.crt": no space left on device: free room on that disk, then run init-tls again$/,
    );
    assertEquals([...Deno.readDirSync(mount)].map((entry) => entry.name), ["fill"]);
  });
});
