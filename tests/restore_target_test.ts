/**
 * Restore's target checks (a network directory not made yet, the base directory): the
 * legitimate targets of a new machine are still taken.
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { BufferedOutput, makeBackup, recordedChanges } from "./support/cli_testing.ts";
import { restore } from "../lib/cli/restore.ts";
import { existsSync } from "../lib/fs/exists.ts";

async function withBackup(body: (base: string, url: string) => Promise<void>): Promise<void> {
  const base = Deno.makeTempDirSync({ prefix: "restore-target-" });
  try {
    const url = await makeBackup(`${base}/backup`, recordedChanges(["fresh-start", "restart"]));
    await body(base, url);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
}

Deno.test("restore into a network dir holding only its network-specific config is taken", () =>
  withBackup(async (base, url) => {
    // lightningd reads <lightning-dir>/<network>/config too: on a new machine the operator
    // may have put it back before restoring (hsm_secret comes after, per the README).
    const net = `${base}/.lightning/bitcoin`;
    Deno.mkdirSync(net, { recursive: true });
    Deno.writeTextFileSync(`${net}/config`, "alias=mynode\n");
    const output = new BufferedOutput();
    const code = await restore([url, net], output);
    assertEquals({ code, stderr: output.stderr }, { code: 0, stderr: [] });
    assertEquals(existsSync(`${net}/lightningd.sqlite3`), true);
  }));

Deno.test("restore into an existing empty dir, a file path, relative and slashed targets", () =>
  withBackup(async (base, url) => {
    Deno.mkdirSync(`${base}/empty`);
    assertEquals(await restore([url, `${base}/empty/`], new BufferedOutput()), 0);
    assertEquals(await restore([url, `${base}/bitcoin.sqlite3`], new BufferedOutput()), 0);
    Deno.mkdirSync(`${base}/mainnet`);
    assertEquals(await restore([url, `${base}/mainnet`], new BufferedOutput()), 0);
    Deno.mkdirSync(`${base}/.lightning/regtest`, { recursive: true });
    Deno.writeTextFileSync(`${base}/.lightning/regtest/hsm_secret`, "x");
    assertEquals(await restore([url, `${base}/.lightning/regtest//`], new BufferedOutput()), 0);
    // A symlinked network dir (a node on another disk).
    Deno.mkdirSync(`${base}/ssd`);
    Deno.mkdirSync(`${base}/ln2`);
    Deno.symlinkSync(`${base}/ssd`, `${base}/ln2/bitcoin`);
    assertEquals(await restore([url, `${base}/ln2/bitcoin`], new BufferedOutput()), 0);
    assertEquals(existsSync(`${base}/ssd/lightningd.sqlite3`), true);
  }));

Deno.test("a target dir that does not exist yet, given with a trailing slash, says to create it", () =>
  withBackup(async (base, url) => {
    const output = new BufferedOutput();
    const code = await restore([url, `${base}/newdir/`], output);
    assertEquals(code, 1, output.text);
    assertEquals(output.stderr.length, 1, output.text);
    assertEquals(
      /newdir/.test(output.stderr[0]) && /creat|mkdir/.test(output.stderr[0]),
      true,
      output.stderr[0],
    );
  }));

Deno.test("restore into ~/.lightning not made yet, or made but empty, refuses and names the network dir", () =>
  withBackup(async (base, url) => {
    // On a new machine `restore URL ~/.lightning` would make a database file named
    // ".lightning", or a database in the base dir, where lightningd never opens one.
    const missing = new BufferedOutput();
    assertEquals(await restore([url, `${base}/.lightning`], missing), 1);
    assertEquals(missing.stderr.length, 1, missing.text);
    assertMatch(missing.stderr[0], /base lightning directory.*mkdir -p '.*\/\.lightning\/bitcoin'/);
    assertEquals(existsSync(`${base}/.lightning`), false);
    Deno.mkdirSync(`${base}/.lightning`);
    const empty = new BufferedOutput();
    assertEquals(await restore([url, `${base}/.lightning/`], empty), 1);
    assertMatch(empty.stderr[0], /base lightning directory.*\.lightning\/bitcoin/);
    assertEquals(Array.from(Deno.readDirSync(`${base}/.lightning`)), []);
    // A node's files directly in .lightning (lightningd before 0.8.0): it is the network dir.
    Deno.writeTextFileSync(`${base}/.lightning/hsm_secret`, "x");
    assertEquals(await restore([url, `${base}/.lightning`], new BufferedOutput()), 0);
  }));

Deno.test("restore into a ~/.lightning holding a signet node names its network dir, not bitcoin", () =>
  withBackup(async (base, url) => {
    // The base dir of a node on another network than bitcoin: restoring into a new
    // .lightning/bitcoin, which a signet lightningd never opens, would leave it without it.
    Deno.mkdirSync(`${base}/.lightning/signet`, { recursive: true });
    Deno.writeTextFileSync(`${base}/.lightning/signet/hsm_secret`, "x");
    const output = new BufferedOutput();
    assertEquals(await restore([url, `${base}/.lightning`], output), 1);
    assertEquals(output.stderr.length, 1, output.text);
    assertMatch(output.stderr[0], /restore into ".*\/\.lightning\/signet"$/);
    assertEquals(existsSync(`${base}/.lightning/bitcoin`), false);
  }));

Deno.test("a target file directly in the base lightning dir is refused like the base dir itself", () =>
  withBackup(async (base, url) => {
    // `restore URL ~/.lightning/lightningd.sqlite3`: lightningd opens the network dir's
    // database, never one in the base dir, and would start on whatever it finds there.
    const lightning = `${base}/.lightning`;
    Deno.mkdirSync(`${lightning}/bitcoin`, { recursive: true });
    Deno.writeTextFileSync(`${lightning}/bitcoin/hsm_secret`, "x");
    const output = new BufferedOutput();
    assertEquals(await restore([url, `${lightning}/lightningd.sqlite3`], output), 1);
    assertEquals(output.stderr.length, 1, output.text);
    assertMatch(
      output.stderr[0],
      /base lightning directory.*restore into ".*\/\.lightning\/bitcoin"$/,
    );
    assertEquals(existsSync(`${lightning}/lightningd.sqlite3`), false);
    // A base dir of another name (lightningd --lightning-dir=/data/ln), told by its config.
    const other = `${base}/ln`;
    Deno.mkdirSync(other);
    Deno.writeTextFileSync(`${other}/config`, "network=bitcoin\n");
    const named = new BufferedOutput();
    assertEquals(await restore([url, `${other}/lightningd.sqlite3`], named), 1);
    assertMatch(named.stderr[0], /base lightning directory/);
    assertEquals(existsSync(`${other}/lightningd.sqlite3`), false);
    // An empty ~/.lightning on a new machine, and one not made yet.
    const fresh = `${base}/new/.lightning`;
    const missing = new BufferedOutput();
    assertEquals(await restore([url, `${fresh}/lightningd.sqlite3`], missing), 1);
    assertMatch(missing.stderr[0], /base lightning directory.*mkdir -p/);
    Deno.mkdirSync(fresh, { recursive: true });
    const empty = new BufferedOutput();
    assertEquals(await restore([url, `${fresh}/lightningd.sqlite3`], empty), 1);
    assertMatch(empty.stderr[0], /base lightning directory/);
    assertEquals(Array.from(Deno.readDirSync(fresh)), []);
    // The network dir's file, and a node's files directly in .lightning (before 0.8.0), are taken.
    assertEquals(
      await restore([url, `${lightning}/bitcoin/lightningd.sqlite3`], new BufferedOutput()),
      0,
    );
    Deno.writeTextFileSync(`${fresh}/hsm_secret`, "x");
    assertEquals(await restore([url, `${fresh}/lightningd.sqlite3`], new BufferedOutput()), 0);
  }));

Deno.test("restore --to-version of an older state into a node's directory is refused unless --accept-older", () =>
  withBackup(async (base, url) => {
    // The README's "for inspection only": lightningd started on an older state can broadcast
    // revoked state and lose its funds.
    const net = `${base}/.lightning/bitcoin`;
    Deno.mkdirSync(net, { recursive: true });
    Deno.writeTextFileSync(`${net}/hsm_secret`, "x");
    for (const target of [net, `${net}/lightningd.sqlite3`]) {
      const output = new BufferedOutput();
      assertEquals(await restore([url, target, "--to-version", "12"], output), 1);
      assertEquals(output.stderr.length, 1, output.text);
      assertMatch(
        output.stderr[0],
        /^Cannot restore backup: --to-version 12 is older than the backup's last version, 15, and ".*\/\.lightning\/bitcoin" is a node's directory, where lightningd would start on it.*lose its funds: restore it elsewhere to inspect it, or add --accept-older/,
      );
      assertEquals(existsSync(`${net}/lightningd.sqlite3`), false);
    }
    // Nor from the first of several copies that holds it.
    const copy = await makeBackup(`${base}/copy`, recordedChanges(["fresh-start", "restart"]));
    const also = new BufferedOutput();
    assertEquals(await restore([url, net, "--to-version", "12", "--also", copy], also), 1);
    assertMatch(also.stderr.join("\n"), /--to-version 12 is older than the backup's last version/);
    assertEquals(existsSync(`${net}/lightningd.sqlite3`), false);
    // Its last version is the newest state; elsewhere, any version is for inspection.
    const last = new BufferedOutput();
    assertEquals(await restore([url, `${base}/inspect.sqlite3`, "--to-version", "12"], last), 0);
    const accepted = new BufferedOutput();
    assertEquals(await restore([url, net, "--to-version", "12", "--accept-older"], accepted), 0);
    assertMatch(accepted.text, /Danger: restored as asked \(--accept-older\)/);
  }));

Deno.test("restore --to-version at the backup's last version is its newest state: the newest state's checks and notes", () =>
  withBackup(async (base, url) => {
    // Allowed into a node's directory, it is what lightningd starts on: a copy that could not
    // be read may be newer, as for a restore without --to-version.
    const net = `${base}/.lightning/bitcoin`;
    Deno.mkdirSync(net, { recursive: true });
    Deno.writeTextFileSync(`${net}/hsm_secret`, "x");
    const gone = `file://${base}/gone`;
    const also = new BufferedOutput();
    assertEquals(await restore([url, net, "--to-version", "15", "--also", gone], also), 1);
    assertMatch(also.stderr.join("\n"), /could not be read or restored, and may be newer/);
    assertEquals(existsSync(`${net}/lightningd.sqlite3`), false);
    const alone = new BufferedOutput();
    assertEquals(await restore([url, net, "--to-version", "15"], alone), 0, alone.text);
    assertMatch(alone.text, /Note: restored from .* alone, and no backup\.lock here/);
    assertMatch(alone.text, /Note: the backup's last change, 15, was stored before/);
    // An older version, elsewhere, is for inspection: no note about the node's last state.
    const older = new BufferedOutput();
    assertEquals(await restore([url, `${base}/inspect.sqlite3`, "--to-version", "12"], older), 0);
    assertEquals(older.text.includes("Note:"), false, older.text);
  }));

Deno.test("a database file named in a directory that merely holds a folder named like a network is taken", () =>
  withBackup(async (base, url) => {
    // A home directory holding a clone of Bitcoin Core, "~/bitcoin": no node is there, and
    // restore pointed the operator into the source tree.
    const home = `${base}/home`;
    Deno.mkdirSync(`${home}/bitcoin/src`, { recursive: true });
    Deno.writeTextFileSync(`${home}/bitcoin/README.md`, "Bitcoin Core\n");
    const output = new BufferedOutput();
    assertEquals(await restore([url, `${home}/lightningd.sqlite3`], output), 0, output.transcript);
    assertEquals(existsSync(`${home}/lightningd.sqlite3`), true);
    // A base dir of another name whose network dir is made but empty (a new machine), or holds
    // a node's files (even without its hsm_secret, lost with part of a disk), is still refused.
    for (const made of ["", "hsm_secret", "gossip_store"]) {
      const other = `${base}/ln-${made}`;
      Deno.mkdirSync(`${other}/signet`, { recursive: true });
      if (made) Deno.writeTextFileSync(`${other}/signet/${made}`, "x");
      const refused = new BufferedOutput();
      assertEquals(await restore([url, `${other}/lightningd.sqlite3`], refused), 1);
      assertMatch(refused.stderr[0], /base lightning directory.*restore into ".*\/signet"$/);
    }
    // ~/.lightning is one by its name, whatever its network dir holds (not yet hsm_secret).
    const lightning = `${base}/.lightning`;
    Deno.mkdirSync(`${lightning}/bitcoin`, { recursive: true });
    Deno.writeTextFileSync(`${lightning}/bitcoin/emergency.recover`, "x");
    const named = new BufferedOutput();
    assertEquals(await restore([url, `${lightning}/lightningd.sqlite3`], named), 1);
    assertMatch(named.stderr[0], /base lightning directory.*restore into ".*\/bitcoin"$/);
  }));

Deno.test("restore --to-version of an older state to the database file a node's config names (wallet=) is refused", () =>
  withBackup(async (base, url) => {
    // lightningd opens what its wallet= line names, whatever the file is called.
    const net = `${base}/.lightning/bitcoin`;
    Deno.mkdirSync(net, { recursive: true });
    Deno.writeTextFileSync(`${net}/hsm_secret`, "x");
    Deno.writeTextFileSync(`${net}/config`, `wallet=sqlite3://${net}/node.sqlite3\n`);
    const output = new BufferedOutput();
    assertEquals(await restore([url, `${net}/node.sqlite3`, "--to-version", "12"], output), 1);
    assertMatch(output.stderr[0], /--to-version 12 is older than the backup's last version/);
    assertEquals(existsSync(`${net}/node.sqlite3`), false);
    // Another file there is a copy lightningd never opens.
    const copy = new BufferedOutput();
    assertEquals(await restore([url, `${net}/old.sqlite3`, "--to-version", "12"], copy), 0);
  }));

Deno.test("restore --to-version of a backup damaged past that version: elsewhere as asked, into a node's directory with --accept-older", () =>
  withBackup(async (base, url) => {
    // A record after version 12 fails its checks: the backup's last version cannot be read,
    // and the point in time before the damage is what there is to restore.
    const log = `${base}/backup/log-00000000000000000001.clnb`;
    const bytes = Deno.readFileSync(log);
    bytes.fill(0xff, 9400, 9404);
    Deno.writeFileSync(log, bytes);
    const elsewhere = new BufferedOutput();
    assertEquals(
      await restore([url, `${base}/inspect.sqlite3`, "--to-version", "12"], elsewhere),
      0,
      elsewhere.transcript,
    );
    const net = `${base}/.lightning/bitcoin`;
    Deno.mkdirSync(net, { recursive: true });
    Deno.writeTextFileSync(`${net}/hsm_secret`, "x");
    const refused = new BufferedOutput();
    assertEquals(await restore([url, net, "--to-version", "12"], refused), 1);
    assertEquals(refused.stderr.length, 1, refused.transcript);
    assertMatch(
      refused.stderr[0],
      /^Cannot restore backup: the backup's last version cannot be read \(.*checksum mismatch.*\), so --to-version 12 may be older than it, and ".*\/bitcoin" is a node's directory.*add --accept-older/,
    );
    const accepted = new BufferedOutput();
    assertEquals(
      await restore([url, net, "--to-version", "12", "--accept-older"], accepted),
      0,
      accepted.transcript,
    );
    assertMatch(
      accepted.text,
      /Danger: restored as asked \(--accept-older\), though the backup's last version cannot be read/,
    );
  }));
