/**
 * The day the node's machine is gone: the steps the README gives for a new machine, and
 * the refusals on the way naming what to do.
 *
 * @module
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { withServer } from "./support/v2_server.ts";
import { BufferedOutput, makeBackup, recordedChanges } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { restore } from "../lib/cli/restore.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { SocketBackupReader } from "../lib/backends/socket/reader.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { restoreBackup } from "../lib/backup/restore.ts";

Deno.test("init --existing without DIR/backup.credential says to put it there, not to set CLN_BACKUP_CREDENTIAL", async () => {
  await withServer(async ({ url, credential }) => {
    const base = Deno.makeTempDirSync({ prefix: "disaster-" });
    const dir = `${base}/regtest`;
    Deno.mkdirSync(dir);
    try {
      // A database restored from the server (CLN_BACKUP_CREDENTIAL is how restore gets it)...
      const writer = await SocketBackend.connect(url, {
        policy: DEFAULT_RETRY_POLICY,
        credential: credential("alice"),
      });
      await writer.append({
        version: 1,
        statements: [
          "CREATE TABLE vars (name TEXT, val TEXT, intval INTEGER)",
          "INSERT INTO vars VALUES ('data_version', NULL, 1)",
        ],
      });
      writer.close();
      const reader = await SocketBackupReader.fetch(url, 5_000, credential("alice"), base);
      restoreBackup(reader, `${dir}/lightningd.sqlite3`);
      reader.close();
      // ...but backup.credential not put back beside it.
      const output = new BufferedOutput();
      assertEquals(await init([url, "--lightning-dir", dir, "--existing"], output), 1);
      const said = output.stderr.join("\n");
      assertMatch(said, new RegExp(`"${dir}/backup\\.credential"`));
      assertEquals(/set CLN_BACKUP_CREDENTIAL/.test(said), false, said);
    } finally {
      Deno.removeSync(base, { recursive: true });
    }
  });
});

Deno.test("restore to a network directory that does not exist yet refuses instead of making a file of that name", async () => {
  const base = Deno.makeTempDirSync({ prefix: "disaster-" });
  try {
    const url = await makeBackup(`${base}/backup`, recordedChanges(["fresh-start", "restart"]));
    Deno.mkdirSync(`${base}/.lightning`);
    const output = new BufferedOutput();
    assertEquals(await restore([url, `${base}/.lightning/bitcoin`], output), 1);
    assertMatch(output.stderr.join("\n"), /mkdir -p .*\.lightning\/bitcoin/);
    assertEquals(existsSync(`${base}/.lightning/bitcoin`), false);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("restore into the base lightning dir refuses and names the network directory", async () => {
  const base = Deno.makeTempDirSync({ prefix: "disaster-" });
  try {
    const url = await makeBackup(`${base}/backup`, recordedChanges(["fresh-start", "restart"]));
    Deno.mkdirSync(`${base}/.lightning/bitcoin`, { recursive: true });
    const output = new BufferedOutput();
    assertEquals(await restore([url, `${base}/.lightning`], output), 1);
    assertMatch(output.stderr.join("\n"), /base lightning directory.*\.lightning\/bitcoin/);
    assertEquals(existsSync(`${base}/.lightning/lightningd.sqlite3`), false);
    // A plain directory (not a lightning dir) still takes a restore.
    Deno.mkdirSync(`${base}/restored`);
    assertEquals(await restore([url, `${base}/restored/`], new BufferedOutput()), 0);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});
