/**
 * `server add-node` on a full disk fails in one line saying what to do, and leaves nothing it
 * made: an empty root left behind would pass for a server's. Needs root to mount a tmpfs;
 * elsewhere it says so and skips.
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { mountTmpfs, run } from "./support/tmpfs.ts";
import { server } from "../lib/cli/server.ts";
import { BufferedOutput } from "./support/cli_testing.ts";

Deno.test("add-node on a full disk says so, and leaves no root, nodes or node directory", async () => {
  const work = Deno.makeTempDirSync({ prefix: "cln-backup-add-node-full-" });
  const mount = `${work}/small`;
  Deno.mkdirSync(mount);
  try {
    if (!mountTmpfs(mount, 64 * 1024)) return;
    // Full: a directory still goes in (tmpfs counts their entries in no page), a key does not.
    const fill = Deno.openSync(`${mount}/fill`, { write: true, create: true });
    try {
      for (;;) fill.writeSync(new Uint8Array(4096));
    } catch {
      // Full.
    } finally {
      fill.close();
    }
    const output = new BufferedOutput();
    assertEquals(await server(["add-node", `${mount}/root`, "alice"], output), 1);
    assertEquals(output.stdout, []);
    assertMatch(
      output.stderr.join("\n"),
      /^Cannot add node: cannot write node alice's key ".*\/root\/nodes\/alice\/key": no space left on device: free room on that disk, then run add-node again$/,
    );
    assertEquals([...Deno.readDirSync(mount)].map((entry) => entry.name), ["fill"]);
  } finally {
    run("umount", [mount]);
    Deno.removeSync(work, { recursive: true });
  }
});
