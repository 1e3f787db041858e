/**
 * `upgrade --encrypt` of a plain backup on a backup server (wire v2): the node fetches it,
 * seals every base, log and record here and uploads the copy, which the server stages beside
 * the plain backup, checks, and swaps in whole. Restores with the new key equal the node, at
 * the newest version and at an older one; the server's files then hold no statement; the
 * plugin goes on sealing. The CLI killed mid-upload, or the server killed once the copy is
 * staged or mid-swap, leaves the plain backup whole and usable, and a retry succeeds. A copy
 * past the quota, a writer connected, a copy whose key.json names another backup or key, a
 * FILE named outside the staging directory, a torn tail on the server, a server of wire v1
 * only, and a node without a credential are refused, each in one line. A server process of
 * its own.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { FakeLightningd, splitMessages } from "./support/fake_lightningd.ts";
import { loadFixture, type Scenario } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { CHEAP_SCRYPT, PASSPHRASE } from "./support/encrypted.ts";
import { CliProcess } from "./support/cli_process.ts";
import {
  cli,
  type EncryptedServer,
  restoredWith,
  startEncryptedServer,
} from "./support/encrypted_server.ts";
import { BufferedOutput } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { upgrade } from "../lib/cli/upgrade.ts";
import { launchArgs, LAUNCHER_NAME, lockLaunchPlan } from "../lib/cli/launcher.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { startServer } from "./support/wire_server.ts";
import { KEY_FILE, readKeyFile } from "../lib/crypto/key_file.ts";
import { DataKey } from "../lib/crypto/data_key.ts";
import { wrapKey } from "../lib/crypto/wrapped_key.ts";
import { newBackupId, scanSegment } from "../lib/format/segment.ts";
import { writeAll } from "../lib/fs/durable.ts";
import { readChain } from "../lib/format/chain.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { SEAM_ENV } from "../lib/fs/step_seam.ts";
import { SocketBackend, socketUrl } from "../lib/backends/socket/backend.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { serverStatus } from "../lib/backends/socket/server_checks.ts";
import { upgradeOnServer } from "../lib/backends/socket/sealed_upgrade.ts";
import { CREDENTIAL_NAME } from "../lib/backends/socket/credential.ts";
import { WireConnection } from "../lib/backends/socket/connection.ts";
import {
  decodeError,
  encodeFile,
  encodeFrame,
  encodeSealedUpgrade,
  ErrorCode,
  V2Type,
} from "../lib/wire/packets_v2.ts";
import type { NewEncryption } from "../lib/backends/file/create.ts";

const SEGMENTS = { CLN_BACKUP_TEST_SEGMENT_BYTES: String(16 * 1024) };
const POLICY = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 };

/** A plain backup of alice on the server, by `init`, then `runs` through the plugin. */
async function plainBackup(s: EncryptedServer, runs: Scenario[]): Promise<number[]> {
  const output = new BufferedOutput();
  assertEquals(await init([s.url, "--lightning-dir", s.dir], output), 0, output.transcript);
  const ends: number[] = [];
  for (const name of runs) {
    const node = FakeLightningd.spawn({ lightningDir: s.dir, env: SEGMENTS });
    node.volatileCommits();
    assertEquals(await node.replay(loadFixture(name).raw), "committed", node.aborted);
    assertEquals((await node.close()).code, 0, await node.stderr());
    ends.push((await serverStatus(s.url, s.credential)).lastVersion);
  }
  return ends;
}

/** `upgrade --encrypt` of alice's node with the passphrase file, in this process. */
async function upgradeAlice(s: EncryptedServer): Promise<{ code: number; text: string }> {
  const passphrase = `${s.root}/passphrase`;
  Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
  const output = new BufferedOutput();
  const code = await upgrade(
    ["--lightning-dir", s.dir, "--encrypt", "--passphrase-file", passphrase],
    output,
  );
  return { code, text: [...output.stdout, ...output.stderr].join("\n") };
}

/** Every byte of every file under `dir`, as one latin1 string per file. */
function filesUnder(dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...filesUnder(path));
    else if (entry.isFile) files.push(new TextDecoder("latin1").decode(Deno.readFileSync(path)));
  }
  return files;
}

/** Whatever an upgrade left beside alice's backup on the server. */
function besideStorage(s: EncryptedServer): string[] {
  return [".encrypting", ".plain"].map((suffix) => `${s.storage}${suffix}`).filter(existsSync);
}

const nodeDump = (s: EncryptedServer) => dumpDatabase(`${s.dir}/lightningd.sqlite3`);

Deno.test("upgrade --encrypt of a server backup keeps every version; the server holds no statement; the plugin goes on", async () => {
  const s = await startEncryptedServer();
  try {
    const ends = await plainBackup(s, ["fresh-start", "restart"]);
    const older = { version: ends[1], dump: nodeDump(s) };
    // The server folds the first runs into a base (up to the version before the newest).
    const conn = await WireConnection.open(socketUrl(s.url), 5_000, s.credential);
    const compacted = await conn.request(encodeFrame(V2Type.Compact));
    conn.close();
    assertEquals(compacted.type, V2Type.CompactRes);
    const node = FakeLightningd.spawn({ lightningDir: s.dir, env: SEGMENTS });
    node.volatileCommits();
    const raw = loadFixture("activity").raw;
    assertEquals(await node.replay(raw), "committed", node.aborted);
    assertEquals((await node.close()).code, 0, await node.stderr());
    const newest = nodeDump(s);
    // A short statement, stored raw in the plain backup, found there before the upgrade.
    const statement = splitMessages(raw).map((m) => m.json.params as { writes?: string[] })
      .flatMap((p) => p?.writes ?? [])
      .find((w) => w.startsWith("INSERT INTO") && w.length > 60 && w.length < 1000)!;
    const needle = statement.slice(0, 48);
    assert(filesUnder(s.storage).some((f) => f.includes(needle)), "the plain backup holds it");
    assertEquals(readChain(s.storage).bases.length, 1, "a base and its log to copy");

    // backup-cli, with the permissions its upgrade is granted only.
    const passphrase = `${s.root}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const upgraded = await cli(
      ["upgrade", "--lightning-dir", s.dir, "--encrypt", "--passphrase-file", passphrase],
      {},
    );
    assertEquals(upgraded.code, 0, upgraded.stderr);
    assertMatch(upgraded.stdout, /^Encrypted the backup on socket:.* in place \(versions /);
    const key = (await readKeyFile(s.dir))!;
    const chain = readChain(s.storage);
    assertEquals(chain.keyId, key.id);
    assert([...chain.bases, ...chain.logs].every((g) => g.header.keyId !== undefined));
    assertEquals(await restoredWith(s, key), newest, "restore at the newest version");
    assertEquals(await restoredWith(s, key, older.version), older.dump, "to an older version");
    assert(filesUnder(`${s.root}/server`).every((f) => !f.includes(needle)), statement);
    assertEquals(besideStorage(s), []);
    assertEquals(Deno.readDirSync(`${s.dir}/cln-backup-scratch`).toArray(), []);

    // The plugin, under the launcher upgrade rewrote, seals its changes for the new backup.
    const plan = lockLaunchPlan(s.dir, readLockFile(s.dir));
    assert(plan.scratch, "the launcher grants an encrypted server backup its scratch");
    const plugin = FakeLightningd.spawn({
      lightningDir: s.dir,
      command: [plan.deno, ...launchArgs(plan)],
    });
    for (let i = 0; i < 3; i++) {
      const outcome = await plugin.transaction([`DELETE FROM vars WHERE name = 'after-${i}'`]);
      assertEquals(outcome, "committed", plugin.aborted);
    }
    assertEquals((await plugin.close()).code, 0, await plugin.stderr());
    assertEquals(await restoredWith(s, key), nodeDump(s), "after the plugin's writes");

    // Again: nothing to upgrade; another key for the backup is refused by the plugin's check.
    const again = await upgradeAlice(s);
    assertEquals(again.code, 0, again.text);
    assertMatch(again.text, /encrypted: nothing to upgrade \("rekey" changes its secret\)/);
    const other = await DataKey.generate();
    await assertRejects(
      () => SocketBackend.connect(s.url, { policy: POLICY, credential: s.credential, key: other }),
      /the key in backup\.key .* is not the key of the backup/,
    );
  } finally {
    await s.stop();
  }
});

Deno.test("upgrade --encrypt of a server backup: killed mid-upload, or the server killed staged or mid-swap, leaves the plain backup; a retry succeeds", async () => {
  const s = await startEncryptedServer();
  try {
    await plainBackup(s, ["fresh-start"]);
    const dump = nodeDump(s);
    const passphrase = `${s.root}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const cliUpgrade = new CliProcess(
      ["upgrade", "--lightning-dir", s.dir, "--encrypt", "--passphrase-file", passphrase],
      { action: "crash", step: "upgrade-upload" },
    );
    assertEquals((await cliUpgrade.result()).signal, "SIGKILL");
    assert(!existsSync(`${s.dir}/${KEY_FILE}`), "no key file before the commit");
    // The server drops the upload as the connection ends; the plain backup serves on.
    for (let i = 0; i < 100 && besideStorage(s).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assertEquals(besideStorage(s), []);
    assertEquals(await restoredWith(s, undefined), dump, "the plain backup after the kill");

    for (const step of ["upgrade-staged", "upgrade-swap"] as const) {
      await s.restartServer({ [SEAM_ENV]: `crash@${step}` });
      const cut = await upgradeAlice(s);
      assertEquals(cut.code, 1, cut.text);
      assertMatch(cut.text, /whether the server swapped it in is unknown: run this again/);
      // Staged: the copy beside the plain backup; mid-swap: the plain one aside, no backup.
      const swap = step === "upgrade-swap";
      const left = [".encrypting", ...(swap ? [".plain"] : [])].map((x) => `${s.storage}${x}`);
      assertEquals([besideStorage(s), existsSync(s.storage)], [left, !swap], step);
      // The next open settles it: the plain backup, whole, and nothing beside it.
      await s.restartServer({});
      const status = await serverStatus(s.url, s.credential);
      assertEquals([status.encrypted ?? false, besideStorage(s)], [false, []], step);
      assertEquals(await restoredWith(s, undefined), dump, `the plain backup after ${step}`);
    }
    // A plain upgrade does not call that set-up done: the plugin refuses the key file there.
    const plainRun = new BufferedOutput();
    assertEquals(await upgrade(["--lightning-dir", s.dir], plainRun), 1, plainRun.transcript);
    assertMatch(
      plainRun.transcript,
      /^Cannot upgrade backup: ".*\/backup\.key" holds a key, but backup\.lock names the plain backup socket:.*: run ".*upgrade --encrypt" again with the secret .*or move the key file aside/,
    );
    // The plugin still writes to it (the key file the cut run left is taken away first).
    Deno.removeSync(`${s.dir}/${KEY_FILE}`);
    const node = FakeLightningd.spawn({ lightningDir: s.dir });
    assertEquals(await node.transaction(["DELETE FROM vars WHERE name = 'x'"]), "committed");
    assertEquals((await node.close()).code, 0, await node.stderr());

    const retried = await upgradeAlice(s);
    assertEquals(retried.code, 0, retried.text);
    assertEquals(await restoredWith(s, (await readKeyFile(s.dir))!), nodeDump(s));
  } finally {
    await s.stop();
  }
});

Deno.test("upgrade --encrypt of a server backup killed after the server swapped it in, before the launcher: run again, it writes the launcher", async () => {
  const s = await startEncryptedServer();
  try {
    await plainBackup(s, ["fresh-start"]);
    const launcher = `${s.dir}/${LAUNCHER_NAME}`;
    const plain = Deno.readTextFileSync(launcher);
    assertEquals((await upgradeAlice(s)).code, 0);
    const sealed = Deno.readTextFileSync(launcher);
    assert(sealed !== plain, "an encrypted server backup's launcher grants its scratch");
    // What a kill between the server's swap and the launcher's rewrite leaves: the key file
    // (written before the commit), the encrypted backup, the plain backup's launcher.
    Deno.writeTextFileSync(launcher, plain);
    // A plain upgrade does not call that set-up done: it says which run finishes it.
    const plainRun = new BufferedOutput();
    assertEquals(await upgrade(["--lightning-dir", s.dir], plainRun), 1, plainRun.transcript);
    assertEquals(plainRun.stderr.length, 1, plainRun.transcript);
    assertMatch(
      plainRun.stderr[0],
      /^Cannot upgrade backup: .* is encrypted and ".*\/backup\.key" holds its key, but the launcher ".*" is a plain backup's: .*run ".*upgrade --encrypt" again/,
    );
    assertEquals(Deno.readTextFileSync(launcher), plain);
    const again = await upgradeAlice(s);
    assertEquals(again.code, 0, again.text);
    assertMatch(again.text, /encrypted, .*holds its key: .*wrote the launcher/);
    assertEquals(Deno.readTextFileSync(launcher), sealed);
    // Once set up: nothing to do.
    const done = await upgradeAlice(s);
    assertMatch(done.text, /encrypted: nothing to upgrade/);
    // A launcher written otherwise (another Deno, another install) that grants the same: done.
    Deno.writeTextFileSync(launcher, sealed.replace("\n", "\n# edited\n"));
    assertMatch((await upgradeAlice(s)).text, /encrypted: nothing to upgrade/);
    const plainDone = new BufferedOutput();
    assertEquals(await upgrade(["--lightning-dir", s.dir], plainDone), 0, plainDone.transcript);
    assertMatch(plainDone.text, /nothing to upgrade on the node/);
  } finally {
    await s.stop();
  }
});

/** A new key for alice's upgrade whose key.json names `wrappedFor`'s backup and key instead. */
async function mismatched(): Promise<NewEncryption> {
  const key = await DataKey.generate();
  const other = await DataKey.generate();
  const otherId = newBackupId();
  const wrapFor = { passphrase: PASSPHRASE, recipients: [] };
  const wrappedKey = await wrapKey(other, otherId, wrapFor, CHEAP_SCRYPT);
  return { key, backupId: newBackupId(), wrappedKey };
}

Deno.test("upgrade --encrypt of a server backup: refused past the quota, beside a writer, for another key, a hostile upload, without a credential, on a v1 server, on a torn tail; the plain backup stays", async () => {
  const s = await startEncryptedServer();
  try {
    await plainBackup(s, ["fresh-start"]);
    const dump = nodeDump(s);
    const { bytes } = await serverStatus(s.url, s.credential);
    // The plain backup fits; its encrypted copy (a nonce and a tag a record more) does not.
    await s.restartServer({}, ["--quota-bytes", String(bytes + 64)]);
    const over = await upgradeAlice(s);
    assertEquals(over.code, 1, over.text);
    assertEquals(over.text.trim().split("\n").length, 1, over.text);
    assertMatch(over.text, /encrypted backup would take \d+ bytes, past its quota of \d+/);
    assertEquals(await restoredWith(s, undefined), dump, "the plain backup stays");
    assert(!existsSync(`${s.dir}/${KEY_FILE}`));
    await s.restartServer({});

    // A hostile upload: a FILE named outside the staging directory ends the connection, and
    // the staging directory goes with it.
    const key = await DataKey.generate();
    const backupId = newBackupId();
    const wrapFor = { passphrase: PASSPHRASE, recipients: [] };
    const wrappedKey = await wrapKey(key, backupId, wrapFor, CHEAP_SCRYPT);
    const { lastVersion } = await serverStatus(s.url, s.credential);
    const hostile = await WireConnection.open(socketUrl(s.url), 5_000, s.credential);
    try {
      const upgrade = { version: lastVersion, bytes: 10, wrappedKey };
      assertEquals((await hostile.request(encodeSealedUpgrade(upgrade))).type, V2Type.Ack);
      await hostile.send(encodeFile("../escape", 5));
      const reply = decodeError(await hostile.receive());
      assertEquals(reply.code, ErrorCode.BadPacket);
      assertMatch(reply.message, /"\.\.\/escape" of 5 bytes is not a segment/);
    } finally {
      hostile.close();
    }
    assertEquals(besideStorage(s), []);
    assert(!existsSync(`${s.root}/server/nodes/alice/escape`));

    const request = (encryption: NewEncryption) => ({
      url: s.url,
      target: socketUrl(s.url),
      credential: s.credential,
      encryption,
      scratch: `${s.root}/scratch`,
      timeoutMs: 5_000,
      commitTimeoutMs: 30_000,
      beforeCommit: () => {},
    });
    // A key.json naming another backup and key than the segments: refused at the check.
    await assertRejects(
      async () => await upgradeOnServer(request(await mismatched())),
      /refused the encrypted copy: the encrypted copy's "(base|log)-.*" is of backup/,
    );
    // A writer on the backup: refused before anything is staged.
    const writer = await SocketBackend.connect(s.url, { policy: POLICY, credential: s.credential });
    const at = writer.state().version;
    await writer.append({ version: at + 1, statements: ["DELETE FROM vars WHERE name = 'w'"] });
    await assertRejects(
      () => upgradeOnServer(request({ key, backupId, wrappedKey })),
      /is writing to this backup: stop the node \(lightningd\) before upgrading/,
    );
    writer.close();
    const status = await serverStatus(s.url, s.credential);
    assertEquals([status.encrypted ?? false, status.lastVersion], [false, at + 1]);
    assertEquals(besideStorage(s), []);

    // Without the node's credential: one line saying what to do.
    Deno.renameSync(`${s.dir}/${CREDENTIAL_NAME}`, `${s.root}/credential`);
    const keyless = await upgradeAlice(s);
    assertEquals(keyless.code, 1, keyless.text);
    assertEquals(keyless.text.trim().split("\n").length, 1, keyless.text);
    assertMatch(keyless.text, /has no backup\.credential, so .* is a wire v1 backup/);
    Deno.renameSync(`${s.root}/credential`, `${s.dir}/${CREDENTIAL_NAME}`);

    // A server of wire v1 only (one backup, no nodes): refused in one line.
    const v1 = startServer(`${s.root}/v1-backup`);
    try {
      writeLockFile(s.dir, { backend_url: v1.url });
      const onV1 = await upgradeAlice(s);
      assertEquals(onV1.code, 1, onV1.text);
      assertEquals(onV1.text.trim().split("\n").length, 1, onV1.text);
      assertMatch(onV1.text, /^Cannot upgrade backup: .*serves one backup over wire v1 only/);
    } finally {
      await v1.server.close();
      writeLockFile(s.dir, { backend_url: s.url });
    }

    // A torn tail on the server (a crash mid-append there, after the last record, where the
    // server's writer appends into zeros): the plugin settles it first.
    const live = readChain(s.storage).logs.at(-1)!.path;
    const file = Deno.openSync(live, { read: true, write: true });
    const scan = scanSegment(file, live, { decode: false });
    let step = scan.next();
    while (!step.done) step = scan.next();
    file.seekSync(step.value.end, Deno.SeekMode.Start);
    writeAll(file, new Uint8Array(20).fill(0xee));
    file.close();
    await s.restartServer({});
    const torn = await upgradeAlice(s);
    assertEquals(torn.code, 1, torn.text);
    assertEquals(torn.text.trim().split("\n").length, 1, torn.text);
    assertMatch(
      torn.text,
      /ends in 20 bytes that fail their checks .*: start the node once so the plugin settles/,
    );
  } finally {
    await s.stop();
  }
});
