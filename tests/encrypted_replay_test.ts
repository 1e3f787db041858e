/**
 * The recorded runs (fresh-start, restart, activity) through the real plugin into an
 * encrypted file backup, with small segments so that logs roll: after each run a restore with
 * the key equals the node's database, and so does a restore to the end of each earlier run
 * (point in time); then the CLI compacts it (the key opened from the passphrase) and the
 * same restores still equal the recorded databases.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { FakeLightningd, splitMessages } from "./support/fake_lightningd.ts";
import { loadFixture, SCENARIOS } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { status } from "./support/plugin_session.ts";
import { PASSPHRASE, restoredWithKey, setUpEncryptedNode } from "./support/encrypted.ts";
import { compact } from "../lib/cli/compact.ts";
import { BufferedOutput } from "./support/cli_testing.ts";
import { readChain } from "../lib/format/chain.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";

const fixtures = SCENARIOS.map(loadFixture);
const lastVersion = (raw: Uint8Array) =>
  splitMessages(raw).filter((m) => m.json.method === "db_write").at(-1)!.json.params
    .data_version as number;

Deno.test("encrypted file backup: the recorded runs restore, to every run's end, before and after compaction", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-enc-" });
  try {
    const { url, key } = await setUpEncryptedNode(dir);
    const backup = `${dir}/backup`;
    const ends: { version: number; dump: string }[] = [];
    for (const fixture of fixtures) {
      const node = FakeLightningd.spawn({
        lightningDir: dir,
        chunking: { kind: "sizes", sizes: fixture.chunks },
        env: { CLN_BACKUP_TEST_SEGMENT_BYTES: String(64 * 1024) },
      });
      node.volatileCommits();
      assertEquals(await node.replay(fixture.raw), "committed", node.aborted);
      assertEquals((await node.close()).code, 0, await node.stderr());
      assertEquals(node.logs.filter((l) => l.level === "broken" || l.level === "unusual"), []);
      assert(node.logs.some((l) => /\(encrypted\) opened and checked at start/.test(l.message)));
      const dump = dumpDatabase(fixture.database);
      ends.push({ version: lastVersion(fixture.raw), dump });
      assertEquals(restoredWithKey(backup, key, dir), dump, `${fixture.name}: restore`);
      for (const end of ends) {
        assertEquals(restoredWithKey(backup, key, dir, end.version), end.dump, `to ${end.version}`);
      }
    }
    assert(readChain(backup).logs.length > 3, "the logs rolled");
    const again = FakeLightningd.spawn({ lightningDir: dir });
    await again.init();
    assertEquals(status(await again.request("backup-status", {})).encrypted, true);
    assertEquals((await again.close()).code, 0, await again.stderr());
    // Without the key, nothing restores; every segment is marked as encrypted.
    const chain = readChain(backup);
    assert([...chain.bases, ...chain.logs].every((s) => s.header.keyId !== undefined));
    let refused = "";
    try {
      restoreBackup(new FileBackupReader(url, backup), `${dir}/nokey.sqlite3`);
    } catch (error) {
      refused = (error as Error).message;
    }
    assert(/is encrypted and no key was given/.test(refused), refused);

    const output = new BufferedOutput();
    const passphrase = `${dir}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const args = [url, "--retain", "2", "--passphrase-file", passphrase];
    assertEquals(await compact(args, output), 0, output.stderr.join("\n"));
    const bases = readChain(backup).bases;
    assertEquals(bases.length, 1);
    assert(bases[0].header.keyId !== undefined, "the new base is encrypted");
    assertEquals(restoredWithKey(backup, key, dir), ends.at(-1)!.dump, "after compaction");
    assertEquals(
      restoredWithKey(backup, key, dir, ends.at(-1)!.version),
      ends.at(-1)!.dump,
      "after compaction, to the last run's end",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
