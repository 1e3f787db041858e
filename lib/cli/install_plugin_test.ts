import { assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { printConfigLine } from "./install_plugin.ts";
import {
  BufferedOutput,
  makeBackup,
  makeNodeDir,
  recordedChanges,
  removeNodeDir,
} from "../../tests/support/cli_testing.ts";
import { writeLockFile } from "../backup/lock_file.ts";

Deno.test("the config line warns when Deno runs from npx's cache, which npm may clean", () => {
  const output = new BufferedOutput();
  printConfigLine(output, "/n/cln-backup-plugin", "/home/u/.npm/_npx/1a2b/node_modules/deno/deno");
  assertEquals(output.stderr.length, 1);
  assertMatch(
    output.stderr[0],
    /^Warning: .*_npx.*: run "npm install --no-save deno@2.9.6" in the checkout/,
  );
  assertEquals(output.stdout.at(-1), "important-plugin=/n/cln-backup-plugin");

  const stable = new BufferedOutput();
  printConfigLine(stable, "/n/cln-backup-plugin", "/usr/local/bin/deno");
  assertEquals(stable.stderr, []);
});

Deno.test({
  name: "the config line warns when the backup it made is closed to lightningd's user",
  ignore: Deno.uid() !== 0, // It makes a node of another user: only root may.
  fn: async () => {
    const dir = makeNodeDir("fresh-start");
    const base = Deno.realPathSync(`${dir}/..`);
    try {
      const url = await makeBackup(`${base}/backup`, recordedChanges(["fresh-start"]));
      writeLockFile(dir, { backend_url: url });
      // As a umask of 022 makes it, whatever this test runs under (027 closes it: below).
      Deno.chmodSync(`${dir}/backup.lock`, 0o644);
      const launcher = `${dir}/cln-backup-plugin`;
      Deno.writeTextFileSync(launcher, "#!/bin/sh\n", { mode: 0o755 });
      const same = new BufferedOutput();
      printConfigLine(same, launcher, "/usr/local/bin/deno");
      assertEquals(same.stderr, [], "lightningd runs as this user: nothing to say");

      Deno.chownSync(`${dir}/lightningd.sqlite3`, 65534, 65534);
      const other = new BufferedOutput();
      printConfigLine(other, launcher, "/usr/local/bin/deno");
      assertEquals(other.stderr, [
        `Warning: this ran as uid 0, but lightningd runs as uid 65534 (lightningd's user, the ` +
        `owner of "${dir}/lightningd.sqlite3"), and the plugin could not open what is this ` +
        `user's alone ("${base}/backup"): give it to that user ("chown -R 65534:65534 ` +
        `'${base}/backup'"), or run this as that user next time`,
      ]);
      assertEquals(other.stdout.at(-1), `important-plugin=${launcher}`);

      // Run with a umask of 027 or 077, init makes backup.lock this user's alone too.
      Deno.chmodSync(`${dir}/backup.lock`, 0o640);
      const umask = new BufferedOutput();
      printConfigLine(umask, launcher, "/usr/local/bin/deno");
      assertMatch(
        umask.stderr[0],
        /could not open what is this user's alone \(".*\/regtest\/backup.lock", ".*\/backup"\): give it to that user \("chown -R 65534:65534 '.*\/regtest\/backup.lock' '.*\/backup'"\)/,
      );
    } finally {
      removeNodeDir(dir);
    }
  },
});
