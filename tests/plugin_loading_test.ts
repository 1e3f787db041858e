/**
 * The plugin loaded each way the Python plugin's README documents: `important-plugin=` and
 * `plugin=` in the config, lightningd's `--plugin`, and a symlink in the plugins directory
 * `~/.lightning/plugins`. The fake lightningd finds it as lightningd does and runs it by
 * that path with the network directory as its working directory; it replays a recorded
 * start, and the backup restores to the node's database.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";
import { pluginsToLoad } from "./support/plugin_loading.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { init } from "../lib/cli/init.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";

/** Sets up a node with `init`; `configure` tells lightningd about the plugin. */
async function loadedNode(
  configure: (node: { dir: string; base: string; launcher: string }) => string[],
): Promise<void> {
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    const url = `file://${base}/backup`;
    const output = new BufferedOutput();
    assertEquals(await init(["--lightning-dir", dir, url], output), 0, output.stderr.join("\n"));
    const launcher = `${dir}/cln-backup-plugin`;
    const argv = configure({ dir, base, launcher });

    const found = pluginsToLoad(dir, argv);
    assertEquals(found.length, 1, JSON.stringify(found));
    const fixture = loadFixture("fresh-start");
    const node = FakeLightningd.spawn({
      lightningDir: dir,
      command: [found[0].path],
      chunking: { kind: "sizes", sizes: fixture.chunks },
      env: { PATH: "/nonexistent" },
    });
    assertEquals(await node.replay(fixture.raw), "committed", node.aborted);
    assertEquals((await node.close()).code, 0, await node.stderr());
    const answers = node.received.filter((m) => String(m.id).startsWith("cln:db_write"));
    assertEquals(answers.length, fixture.summary.db_write_calls);
    assert(answers.every((m) => (m.result as { result?: string }).result === "continue"));

    restoreBackup(openReader(url), `${base}/restored.sqlite3`);
    assertEquals(dumpDatabase(`${base}/restored.sqlite3`), dumpDatabase(fixture.database));
  } finally {
    removeNodeDir(dir);
  }
}

Deno.test("loaded with the important-plugin= line init prints, in the network dir's config", async () => {
  await loadedNode(({ dir, launcher }) => {
    Deno.writeTextFileSync(`${dir}/config`, `# lightningd\nimportant-plugin=${launcher}\n`);
    assertEquals(pluginsToLoad(dir), [{ path: launcher, important: true }]);
    return [];
  });
});

Deno.test("loaded with plugin= in the base dir's config", async () => {
  await loadedNode(({ base, launcher }) => {
    Deno.writeTextFileSync(`${base}/config`, `network=regtest\nplugin=${launcher}\n`);
    return [];
  });
});

Deno.test("loaded with lightningd's --plugin", async () => {
  await loadedNode(({ launcher }) => [`--plugin=${launcher}`]);
});

Deno.test("loaded through a symlink in the plugins directory, started by that path", async () => {
  await loadedNode(({ base, launcher }) => {
    Deno.mkdirSync(`${base}/plugins`);
    Deno.symlinkSync(launcher, `${base}/plugins/cln-backup-plugin`);
    // Not executable: lightningd skips it, and so does the fake.
    Deno.writeTextFileSync(`${base}/plugins/README`, "notes\n");
    assertEquals(pluginsToLoad(`${base}/regtest`), [
      { path: `${base}/plugins/cln-backup-plugin`, important: false },
    ]);
    return [];
  });
});
