/**
 * An encrypted backup on a backup server (wire v2) that holds no key: `init --encrypt` with a
 * `socket:` URL, the recorded runs through the real plugin, which seals each change for its
 * place in the server's files; restores with the key equal the node's database, to each run's
 * end too; the server's files hold no plaintext of a statement; the server's STATUS and
 * VERIFY work without the key and say it is encrypted. A server process of its own, as an
 * operator runs it.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { FakeLightningd, splitMessages } from "./support/fake_lightningd.ts";
import { loadFixture, SCENARIOS } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { makeEncryptedBackup, PASSPHRASE } from "./support/encrypted.ts";
import { startServer } from "./support/wire_server.ts";
import {
  cli,
  type EncryptedServer,
  initEncrypted,
  restoredWith,
  startEncryptedServer,
} from "./support/encrypted_server.ts";
import { CREDENTIAL_ENV } from "../lib/backends/socket/credential.ts";
import { BufferedOutput } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { rekey } from "../lib/cli/rekey.ts";
import type { Output } from "../lib/cli/args.ts";
import type { Prompt } from "../lib/cli/secrets.ts";
import { unlockDir } from "../lib/cli/unlock.ts";
import { launchArgs, lockLaunchPlan } from "../lib/cli/launcher.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { bumpStatement } from "./support/statements.ts";
import { KEY_FILE, readKeyFile, writeKeyFile } from "../lib/crypto/key_file.ts";
import { CliProcess } from "./support/cli_process.ts";
import { FaultProxy } from "./support/fault_proxy.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { DataKey } from "../lib/crypto/data_key.ts";
import { SocketBackend } from "../lib/backends/socket/backend.ts";
import { serverStatus, serverVerify } from "../lib/backends/socket/server_checks.ts";
import { ConnectionLostError, WireConnection } from "../lib/backends/socket/connection.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import {
  decodeError,
  encodeError,
  encodeFrame,
  encodeSealedBase,
  ErrorCode,
  V2Type,
} from "../lib/wire/packets_v2.ts";
import { readChain } from "../lib/format/chain.ts";
import { decodeRecordHeader, RECORD_HEADER_SIZE } from "../lib/format/record.ts";
import { SEGMENT_HEADER_SIZE } from "../lib/format/segment.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";

import { DatabaseSync } from "node:sqlite";

const fixtures = SCENARIOS.map(loadFixture);
const dbWrites = (raw: Uint8Array) =>
  splitMessages(raw).filter((m) => m.json.method === "db_write").map((m) =>
    m.json.params as { data_version: number; writes: string[] }
  );

/** Every byte of every file under `dir`. */
function filesUnder(dir: string): Uint8Array[] {
  const files: Uint8Array[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...filesUnder(path));
    else if (entry.isFile) files.push(Deno.readFileSync(path));
  }
  return files;
}

/** The data_version of the node's database in `dir`. */
function dumpVersion(dir: string): number {
  const db = new DatabaseSync(`${dir}/lightningd.sqlite3`, { readOnly: true });
  try {
    const row = db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get();
    return Number(row!.intval);
  } finally {
    db.close();
  }
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("encrypted server backup: the recorded runs restore equal, to each run's end; the server sees no plaintext", async () => {
  const s = await startEncryptedServer();
  try {
    const key = await initEncrypted(s);
    const ends: { version: number; dump: string }[] = [];
    for (const fixture of fixtures) {
      const node = FakeLightningd.spawn({
        lightningDir: s.dir,
        chunking: { kind: "sizes", sizes: fixture.chunks },
        // Small logs, so that the node rolls them (seals sealed for the server's files).
        env: { CLN_BACKUP_TEST_SEGMENT_BYTES: String(64 * 1024) },
      });
      node.volatileCommits();
      assertEquals(await node.replay(fixture.raw), "committed", node.aborted);
      assertEquals((await node.close()).code, 0, await node.stderr());
      assertEquals(node.logs.filter((l) => l.level === "broken"), []);
      const dump = dumpDatabase(fixture.database);
      ends.push({ version: dbWrites(fixture.raw).at(-1)!.data_version, dump });
      assertEquals(await restoredWith(s, key), dump, `${fixture.name}: restore`);
    }
    for (const end of ends) {
      assertEquals(await restoredWith(s, key, end.version), end.dump, `to ${end.version}`);
    }
    const chain = readChain(s.storage);
    assert(chain.logs.length > 3, `the logs rolled: ${chain.logs.length}`);
    assert([...chain.bases, ...chain.logs].every((g) => g.header.keyId !== undefined));

    // No statement of a stored change appears in the server's files: a short one (stored
    // raw, uncompressed, in a plain backup) of the activity run.
    const statement = dbWrites(fixtures[2].raw).flatMap((w) => w.writes)
      .find((w) => w.startsWith("INSERT INTO") && w.length > 60 && w.length < 1000)!;
    const needle = new TextEncoder().encode(statement.slice(0, 48));
    assert(filesUnder(s.root).every((bytes) => !contains(bytes, needle)), statement);

    // The server describes and checks it without the key, and says it is encrypted.
    const status = await serverStatus(s.url, s.credential);
    assertEquals([status.encrypted, status.lastVersion], [true, ends.at(-1)!.version]);
    assertEquals(status.wrappedFor, ["passphrase"]);
    const verified = await serverVerify(s.url, s.credential);
    assertEquals([verified.encrypted, verified.lastVersion], [true, ends.at(-1)!.version]);
    const statusLine = await cli(["status", s.url], {
      [CREDENTIAL_ENV]: s.credential.path,
    });
    assertEquals(statusLine.code, 0, statusLine.stderr);
    assertMatch(statusLine.stdout, /encryption: encrypted .* key wrapped for passphrase/);

    // The CLI restores and verifies it with the passphrase, on this machine.
    const env = { [CREDENTIAL_ENV]: s.credential.path, CLN_BACKUP_PASSPHRASE: PASSPHRASE };
    const restored = await cli(["restore", s.url, `${s.root}/cli.sqlite3`], env);
    assertEquals(restored.code, 0, restored.stderr);
    assertEquals(dumpDatabase(`${s.root}/cli.sqlite3`), ends.at(-1)!.dump);
    const verify = await cli(["verify", s.url], env);
    assertEquals(verify.code, 0, verify.stderr);
    assertMatch(verify.stdout, /it is encrypted, so it is restored here/);
    assertMatch(verify.stdout, /^OK: .* restores to version \d+/m);
  } finally {
    await s.stop();
  }
});

Deno.test("encrypted server backup: the plugin under its launcher; a wrong passphrase, another key, a node without its key are refused; rekey", async () => {
  const s = await startEncryptedServer();
  try {
    await initEncrypted(s);
    // The launcher init wrote: the plugin reads its key and loads the crypto primitives.
    const plan = lockLaunchPlan(s.dir, readLockFile(s.dir));
    assert(plan.scratch, "an encrypted server backup is compacted in cln-backup-scratch");
    const node = FakeLightningd.spawn({
      lightningDir: s.dir,
      command: [plan.deno, ...launchArgs(plan)],
    });
    assertEquals(await node.replay(fixtures[0].raw), "committed", node.aborted);
    assertEquals((await node.close()).code, 0, await node.stderr());

    const wrong = await cli(["restore", s.url, `${s.root}/wrong.sqlite3`], {
      [CREDENTIAL_ENV]: s.credential.path,
      CLN_BACKUP_PASSPHRASE: "not the passphrase",
    });
    assertEquals(wrong.code, 1);
    assertEquals(wrong.stderr.trim().split("\n").length, 1, wrong.stderr);
    assertMatch(wrong.stderr, /does not open the backup's key .*wrong passphrase/);
    assert(!Deno.readDirSync(s.root).some((e) => e.name.startsWith("wrong")));
    // Without its passphrase the backup is named as the operator named it, not as its copy.
    const none = await cli(["restore", s.url, `${s.root}/none.sqlite3`], {
      [CREDENTIAL_ENV]: s.credential.path,
    });
    assertEquals(none.code, 1);
    assert(
      none.stderr.startsWith(`Cannot unlock backup: "${s.url}" is encrypted: give its passphrase`),
      none.stderr,
    );

    // rekey: the server's key.json is replaced; only the new passphrase opens the backup.
    const newPassphrase = `${s.root}/new-passphrase`;
    Deno.writeTextFileSync(newPassphrase, "a new passphrase\n", { mode: 0o600 });
    const credentialEnv = { [CREDENTIAL_ENV]: s.credential.path };
    const rekeyed = await cli(["rekey", s.url, "--new-passphrase-file", newPassphrase], {
      ...credentialEnv,
      CLN_BACKUP_PASSPHRASE: PASSPHRASE,
    });
    assertEquals(rekeyed.code, 0, rekeyed.stderr);
    assertMatch(rekeyed.stdout, /^Rewrapped the key of "socket:.*" for a new passphrase/);
    const old = await cli(["restore", s.url, `${s.root}/old.sqlite3`], {
      ...credentialEnv,
      CLN_BACKUP_PASSPHRASE: PASSPHRASE,
    });
    assertMatch(old.stderr, /does not open the backup's key/);
    const renewed = await cli(["restore", s.url, `${s.root}/new.sqlite3`], {
      ...credentialEnv,
      CLN_BACKUP_PASSPHRASE: "a new passphrase",
    });
    assertEquals(renewed.code, 0, renewed.stderr);
    assertEquals(
      dumpDatabase(`${s.root}/new.sqlite3`),
      dumpDatabase(`${s.dir}/lightningd.sqlite3`),
    );

    // Another key for this backup, and the plugin's key against a plain backup: refused.
    const policy = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 };
    const other = await DataKey.generate();
    await assertRejects(
      () => SocketBackend.connect(s.url, { policy, credential: s.credential, key: other }),
      /the key in backup\.key .* is not the key of the backup/,
    );
    // Without its key the node's plain change is refused by the server, nothing stored.
    const keyless = await SocketBackend.connect(s.url, { policy, credential: s.credential });
    const version = keyless.state().version;
    await assertRejects(
      () => keyless.append({ version: version + 1, statements: ["DELETE FROM vars"] }),
      /is plain, and the backup is encrypted: .* put it back \("cln-backup rekey <url> --key-file <lightning-dir>"\), /,
    );
    keyless.close();
  } finally {
    await s.stop();
  }
});

Deno.test("init --encrypt of a node with a database sends its base a chunk at a time, past the packet limit", async () => {
  const s = await startEncryptedServer("activity");
  try {
    // Far below the sealed base's size: in one packet (SEALED_INIT) it was refused.
    await s.restartServer({}, ["--max-packet-bytes", "20000"]);
    const key = await initEncrypted(s);
    const bases = [...Deno.readDirSync(s.storage)].filter((e) => e.name.startsWith("base-"));
    assertEquals(bases.length, 1);
    assert(Deno.statSync(`${s.storage}/${bases[0].name}`).size > 20_000);
    assertEquals(await restoredWith(s, key), dumpDatabase(`${s.dir}/lightningd.sqlite3`));
    // Into an empty backup only: a second one is refused before its base is taken.
    const base = `${s.root}/base.clnb`;
    Deno.writeFileSync(base, new Uint8Array(300_000));
    const remote = await SocketBackend.connect(s.url, {
      policy: { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 },
      credential: s.credential,
    });
    await assertRejects(
      () => remote.initSealed(new TextEncoder().encode("{}"), base, 9),
      /encrypted backup is made in an empty backup only/,
    );
    remote.close();
    assertEquals(await restoredWith(s, key), dumpDatabase(`${s.dir}/lightningd.sqlite3`));
  } finally {
    await s.stop();
  }
});

Deno.test("a key file beside a plain server backup is refused at the node's first write", async () => {
  const s = await startEncryptedServer("restart");
  try {
    const output = new BufferedOutput();
    assertEquals(await init([s.url, "--lightning-dir", s.dir], output), 0, output.transcript);
    writeKeyFile(s.dir, await DataKey.generate());
    const node = FakeLightningd.spawn({ lightningDir: s.dir });
    assertEquals(await node.transaction(["DELETE FROM vars WHERE name = 'x'"]), "aborted");
    await node.kill().catch(() => {});
    const said = node.logs.map((l) => l.message).join("\n");
    assertMatch(said, /is not encrypted, but backup\.key beside backup\.lock holds a key/);
    const { lastVersion, encrypted } = await serverStatus(s.url, s.credential);
    assertEquals([lastVersion, encrypted], [dumpVersion(s.dir), undefined]);
  } finally {
    await s.stop();
  }
});

Deno.test("wire v1 to an encrypted backup is refused: NACK, nothing stored", async () => {
  const root = Deno.makeTempDirSync({ prefix: "socket-encrypted-v1-" });
  await makeEncryptedBackup(`${root}/served`);
  const server = startServer(`${root}/served`);
  try {
    const policy = { ...DEFAULT_RETRY_POLICY, retries: 0, timeoutMs: 5_000 };
    await assertRejects(
      () => SocketBackend.connect(server.url, { policy }),
      /refused wire v1 \(NACK\)/,
    );
    assert(server.logs.some((l) => /wire v1 to an encrypted backup, which is v2 only/.test(l)));
    assertEquals(readChain(`${root}/served`).logs.length, 1);
  } finally {
    await server.server.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("encrypted server backup: a base or key.json that is not this backup's, or a base cut short, is refused and leaves nothing", async () => {
  const s = await startEncryptedServer();
  try {
    await initEncrypted(s);
    const node = FakeLightningd.spawn({ lightningDir: s.dir });
    assertEquals(await node.replay(fixtures[0].raw), "committed", node.aborted);
    assertEquals((await node.close()).code, 0, await node.stderr());
    const before = Deno.readDirSync(s.storage).toArray().map((e) => e.name).sort();
    const open = () => WireConnection.open(socketUrl(s.url), 5_000, s.credential);
    // Garbage where a base belongs: ERROR, the backup as it was.
    const conn = await open();
    try {
      const junk = new Uint8Array(3000).fill(1);
      await conn.send(encodeSealedBase(junk.length));
      await conn.send(encodeFrame(V2Type.Data, junk));
      const reply = decodeError(await conn.receive());
      assertEquals(reply.code, ErrorCode.Failed);
      assertMatch(reply.message, /^SEALED_BASE failed: the sealed base/);
    } finally {
      conn.close();
    }
    // Nor is a key.json of another backup taken in place of its own (rekey).
    const rekey = await open();
    try {
      const other = new TextEncoder().encode(JSON.stringify({
        cln_backup_key: 1,
        backup_id: "00".repeat(16),
        key_id: "00".repeat(8),
        wraps: [],
      }));
      await rekey.send(encodeFrame(V2Type.SealedKey, other));
      const reply = decodeError(await rekey.receive());
      assertEquals(reply.code, ErrorCode.Refused);
      assertMatch(reply.message, /holds the key of another backup/);
    } finally {
      rekey.close();
    }
    // A base cut short by a lost connection: its upload is removed.
    const cut = await open();
    await cut.send(encodeSealedBase(5000));
    await cut.send(encodeFrame(V2Type.Data, new Uint8Array(100)));
    const listing = () => Deno.readDirSync(s.storage).toArray().map((e) => e.name).sort();
    const uploading = () => listing().some((n) => n.startsWith("upload-"));
    // Cut once the server has begun the upload (else it may begin it after the check below).
    for (let tries = 0; !uploading() && tries < 500; tries++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert(uploading(), "the server took the base's first bytes");
    cut.close();
    for (let tries = 0; uploading() && tries < 500; tries++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(listing(), before);
    assertEquals((await serverStatus(s.url, s.credential)).encrypted, true);
  } finally {
    await s.stop();
  }
});

Deno.test("encrypted server backup: init seals the node's database; a change the node never committed is rewound, and a restarted server is reconnected to", async () => {
  const s = await startEncryptedServer("restart");
  try {
    const key = await initEncrypted(s);
    const node = `${s.dir}/lightningd.sqlite3`;
    assertEquals(await restoredWith(s, key), dumpDatabase(node), "the sealed base of init");
    // Quick reconnects: the server is restarted under the plugin below.
    writeLockFile(s.dir, {
      ...readLockFile(s.dir),
      socket_retries: 50,
      socket_retry_delay_s: 0.1,
    });
    const first = FakeLightningd.spawn({ lightningDir: s.dir });
    for (let i = 0; i < 3; i++) {
      assertEquals(await first.transaction([`DELETE FROM vars WHERE name = 'a${i}'`]), "committed");
    }
    // lightningd stops after the plugin stored a change, before committing it.
    const version = first.dataVersion();
    const stored = await first.request("db_write", {
      data_version: version + 1,
      writes: ["INSERT INTO vars (name, intval) VALUES ('never', 1)", bumpStatement(version)],
    });
    assertEquals((stored.result as Record<string, unknown>).result, "continue");
    assertEquals((await first.close()).code, 0, await first.stderr());
    assertEquals((await serverStatus(s.url, s.credential)).lastVersion, version + 1);
    assert((await restoredWith(s, key)).includes("'never'"), "the backup holds it for now");
    // The server keeps the sealed bytes of the change the node never committed.
    const kept = readChain(s.storage).logs.map((log) => ({
      path: log.path,
      bytes: Deno.readFileSync(log.path),
    }));

    const second = FakeLightningd.spawn({ lightningDir: s.dir });
    // The node is one behind: the plugin rewinds the change, then seals this one in its place.
    assertEquals(await second.transaction(["DELETE FROM vars WHERE name = 'b'"]), "committed");
    await s.restartServer({});
    assertEquals(await second.transaction(["DELETE FROM vars WHERE name = 'c'"]), "committed");
    assertEquals((await second.close()).code, 0, await second.stderr());
    assert(
      second.logs.some((l) => /reconnect/.test(l.message)),
      JSON.stringify(second.logs.map((l) => l.message)),
    );
    const restored = await restoredWith(s, key);
    assertEquals(restored, dumpDatabase(node));
    assert(!restored.includes("'never'"), "the change the node never committed is gone");
    // Put back over what replaced it, the kept change does not open: it was sealed for a
    // place no later record is sealed for (the rewind's next change starts a new log).
    for (const { path, bytes } of kept) {
      const now = Deno.readFileSync(path);
      let end = SEGMENT_HEADER_SIZE;
      for (let header; (header = decodeRecordHeader(bytes.subarray(end)));) {
        end += RECORD_HEADER_SIZE + header.storedLength;
      }
      const spliced = now.slice();
      spliced.set(
        bytes.subarray(SEGMENT_HEADER_SIZE, Math.min(end, now.length)),
        SEGMENT_HEADER_SIZE,
      );
      Deno.writeFileSync(path, spliced);
      let refused = "";
      try {
        const reader = new FileBackupReader(`file://${s.storage}`, s.storage, { key });
        restoreBackup(reader, `${s.root}/spliced-${crypto.randomUUID()}.sqlite3`);
      } catch (error) {
        refused = (error as Error).message;
      }
      assertMatch(refused, /^Cannot read backup: .* of ".*log-0+1\.clnb"; the backup is damaged/);
      Deno.writeFileSync(path, now);
    }
  } finally {
    await s.stop();
  }
});

/** `init --encrypt` of `s`'s node with the passphrase file `passphrase`, as an operator runs it. */
function encryptedInitArgs(s: { url: string; dir: string }, passphrase: string, url = s.url) {
  return [url, "--lightning-dir", s.dir, "--encrypt", "--passphrase-file", passphrase];
}

Deno.test("init --encrypt to a server killed before backup.lock: the rerun opens what it left with the key it left, and nothing else", async () => {
  const s = await startEncryptedServer("fresh-start");
  try {
    const passphrase = `${s.root}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const killed = new CliProcess(["init", ...encryptedInitArgs(s, passphrase)], {
      action: "crash",
      step: "init-before-lock",
    });
    assertEquals((await killed.result()).signal, "SIGKILL");
    const leftKey = Deno.readTextFileSync(`${s.dir}/${KEY_FILE}`);

    // A plain init, or one whose key file holds another key, does not take it: beside the
    // key file the plain one is refused at once; with it moved aside, by what the server holds.
    const plain = new BufferedOutput();
    assertEquals(await init([s.url, "--lightning-dir", s.dir], plain), 1);
    assertMatch(plain.stderr[0], /backup\.key" holds a key, but this init makes a plain backup/);
    Deno.removeSync(`${s.dir}/${KEY_FILE}`);
    const plainAlone = new BufferedOutput();
    assertEquals(await init([s.url, "--lightning-dir", s.dir], plainAlone), 1);
    assertMatch(
      plainAlone.stderr[0],
      /not what an interrupted init .*it is encrypted, and this init does not encrypt/,
    );
    writeKeyFile(s.dir, await DataKey.generate());
    const other = new BufferedOutput();
    assertEquals(await init(encryptedInitArgs(s, passphrase), other), 1);
    assertMatch(other.stderr[0], /it is sealed with another key than the one in ".*backup\.key"/);
    assertEquals(existsSync(`${s.dir}/backup.lock`), false);

    Deno.writeTextFileSync(`${s.dir}/${KEY_FILE}`, leftKey);
    // Another passphrase than the interrupted init's would be kept for a key it does not open.
    const wrong = `${s.root}/wrong-passphrase`;
    Deno.writeTextFileSync(wrong, "another passphrase\n", { mode: 0o600 });
    const otherSecret = new BufferedOutput();
    assertEquals(await init(encryptedInitArgs(s, wrong), otherSecret), 1);
    assertMatch(
      otherSecret.stderr[0],
      /its key does not open: .*; give the one the interrupted init was given/,
    );
    assertEquals(Deno.readTextFileSync(`${s.dir}/${KEY_FILE}`), leftKey);
    const output = new BufferedOutput();
    assertEquals(await init(encryptedInitArgs(s, passphrase), output), 0, output.stderr.join("\n"));
    assertMatch(
      output.stdout[0],
      /^Found the backup .* an interrupted init left, a snapshot of .* version 11/,
    );
    assertEquals(Deno.readTextFileSync(`${s.dir}/${KEY_FILE}`), leftKey);
    const key = await readKeyFile(s.dir);
    assertEquals(await restoredWith(s, key), dumpDatabase(loadFixture("fresh-start").database));
    // The server's key.json opens with the passphrase that interrupted init was given.
    const restored = `${s.root}/restored.sqlite3`;
    const run = await cli(["restore", s.url, restored], {
      [CREDENTIAL_ENV]: s.credential.path!,
      CLN_BACKUP_PASSPHRASE: PASSPHRASE,
    });
    assertEquals(run.code, 0, run.stderr);
    assertEquals(dumpDatabase(restored), dumpDatabase(loadFixture("fresh-start").database));
  } finally {
    await s.stop();
  }
});

Deno.test("init --encrypt that loses its connection before the server's answer keeps its key; the rerun finds the backup", async () => {
  const s = await startEncryptedServer("fresh-start");
  const upstream = Number(s.url.split(":").at(-1));
  // The server's bytes of a handshake and of the plugin's heartbeat at connect: the connection
  // is cut where the ACK of the base starts.
  const probe = new FaultProxy(upstream);
  const probing = await WireConnection.open(
    socketUrl(`socket:127.0.0.1:${probe.port}`),
    5_000,
    s.credential,
  );
  await probing.request(encodeFrame(V2Type.ReqMetadata));
  probing.close();
  await probe.close();
  const proxy = new FaultProxy(upstream, {
    kind: "cut",
    direction: "s2c",
    at: probe.forwarded.s2c,
  });
  try {
    const url = `socket:127.0.0.1:${proxy.port}`;
    const passphrase = `${s.root}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const lost = new BufferedOutput();
    assertEquals(await init(encryptedInitArgs(s, passphrase, url), lost), 1);
    assert(proxy.struck);
    assertMatch(lost.stderr[0], /may have stored the snapshot all the same: run this init again/);
    const leftKey = Deno.readTextFileSync(`${s.dir}/${KEY_FILE}`);
    const again = new BufferedOutput();
    assertEquals(
      await init(encryptedInitArgs(s, passphrase, url), again),
      0,
      again.stderr.join("\n"),
    );
    assertMatch(again.stdout[0], /^Found the backup .* an interrupted init left/);
    assertEquals(Deno.readTextFileSync(`${s.dir}/${KEY_FILE}`), leftKey);
    assertEquals(
      await restoredWith(s, await readKeyFile(s.dir)),
      dumpDatabase(loadFixture("fresh-start").database),
    );
  } finally {
    await proxy.close();
    await s.stop();
  }
});

Deno.test("init --encrypt refused by its server takes its new key file back, and leaves one an interrupted init left", async () => {
  const s = await startEncryptedServer("fresh-start");
  try {
    const passphrase = `${s.root}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    // An empty backup, under a quota the base does not fit: the key made for it goes again.
    await s.restartServer({}, ["--quota-bytes", "2000"]);
    const quota = new BufferedOutput();
    assertEquals(await init(encryptedInitArgs(s, passphrase), quota), 1);
    assertMatch(quota.stderr[0], /quota/);
    assertEquals(existsSync(`${s.dir}/${KEY_FILE}`), false);
    // The server holds a plain backup of this node, with a change after its snapshot.
    await s.restartServer({});
    const first = new BufferedOutput();
    assertEquals(await init([s.url, "--lightning-dir", s.dir], first), 0, first.transcript);
    const backend = await SocketBackend.connect(s.url, { credential: s.credential });
    await backend.append({ version: 12, statements: [bumpStatement(11)] });
    backend.close();
    Deno.removeSync(`${s.dir}/backup.lock`);
    const none = new BufferedOutput();
    assertEquals(await init(encryptedInitArgs(s, passphrase), none), 1);
    assertMatch(none.stderr[0], /leaves in ".*backup\.key", and there is none\)/);
    // A key file an interrupted init left stays.
    const left = await DataKey.generate();
    writeKeyFile(s.dir, left);
    const again = new BufferedOutput();
    assertEquals(await init(encryptedInitArgs(s, passphrase), again), 1);
    assertMatch(again.stderr[0], /it holds 2 records/);
    assertEquals((await readKeyFile(s.dir))!.bytes, left.bytes);
  } finally {
    await s.stop();
  }
});

/** What {@linkcode withRekeyedServer} gives its body. */
interface ServerRekey {
  s: EncryptedServer;
  /** Writes a passphrase file, `text`, in the server's root. */
  secret: (name: string, text: string) => string;
  /** Whether the passphrase in `file` opens the backup's key on the server's disk. */
  opens: (file: string) => Promise<boolean>;
  /**
   * `rekey` with the node's credential: given to it, not set in the environment, which the
   * test files running beside this one share (an in-process restore over wire v1 took it).
   */
  rekeyOn: (args: string[], output: Output, prompt?: Prompt) => Promise<number>;
}

/**
 * Runs `body` on a server holding an encrypted backup of the node, its credential in the
 * environment; what it stubs of WireConnection is put back and the server stopped after it.
 */
async function withRekeyedServer(body: (rekey: ServerRekey) => Promise<void>): Promise<void> {
  const s = await startEncryptedServer();
  const env = { get: (name: string) => name === CREDENTIAL_ENV ? s.credential.path : undefined };
  const { open } = WireConnection;
  const { request, send } = WireConnection.prototype;
  try {
    await initEncrypted(s);
    const secret = (name: string, text: string) => {
      Deno.writeTextFileSync(`${s.root}/${name}`, `${text}\n`, { mode: 0o600 });
      return `${s.root}/${name}`;
    };
    const opens = (file: string) =>
      unlockDir(s.storage, { "passphrase-file": file }, () => Promise.resolve(undefined))
        .then(() => true, () => false);
    const rekeyOn = (args: string[], output: Output, prompt?: Prompt) =>
      rekey(args, output, prompt, env);
    await body({ s, secret, opens, rekeyOn });
  } finally {
    WireConnection.open = open;
    Object.assign(WireConnection.prototype, { request, send });
    await s.stop();
  }
}

Deno.test("encrypted server backup: a rekey run while another waits at its prompt: the waiting one is refused, stores nothing, and the secret of the one that finished opens the backup", async () => {
  await withRekeyedServer(async ({ s, secret, opens, rekeyOn }) => {
    const old = secret("old", PASSPHRASE);
    const second = secret("second", "second terminal's passphrase");
    const first = secret("first", "first terminal's passphrase");
    const other = new BufferedOutput();
    let otherCode: number | undefined;
    // The first operator is at the new-passphrase prompt (key.json fetched and opened) when a
    // second rekey runs to its end.
    const prompt = async () => {
      otherCode ??= await rekeyOn(
        [s.url, "--passphrase-file", old, "--new-passphrase-file", second],
        other,
        () => Promise.resolve(undefined),
      );
      return "first terminal's passphrase";
    };
    const output = new BufferedOutput();
    const code = await rekeyOn([s.url, "--passphrase-file", old], output, prompt);
    assertEquals(otherCode, 0, other.stderr.join("\n"));
    assertMatch(other.text, /^Rewrapped the key of "socket:.*" for a new passphrase/);
    assertEquals([code, output.stdout], [1, []], output.text);
    assertEquals(output.stderr.length, 1, output.stderr.join("\n"));
    assertMatch(
      output.stderr[0],
      /^Cannot rekey backup: the server refused the rewrapped key: another rekey replaced key\.json since this one read it: key\.json was not changed by this one; run rekey again with the secret now in force/,
    );
    assertEquals([await opens(second), await opens(first), await opens(old)], [true, false, false]);
  });
});

Deno.test("encrypted server backup: a node's rekey while one on the server's host (of the backup directory) waits at its prompt is refused, and the host's secret opens the backup", async () => {
  await withRekeyedServer(async ({ s, secret, opens, rekeyOn }) => {
    const old = secret("old", PASSPHRASE);
    const node = secret("node", "the node's passphrase");
    const host = secret("host", "the host's passphrase");
    const other = new BufferedOutput();
    let otherCode: number | undefined;
    // The server's operator rekeys the directory itself, and is at the new-passphrase prompt
    // when the node's operator rekeys through the server.
    const prompt = async () => {
      otherCode ??= await rekeyOn(
        [s.url, "--passphrase-file", old, "--new-passphrase-file", node],
        other,
        () => Promise.resolve(undefined),
      );
      return "the host's passphrase";
    };
    const output = new BufferedOutput();
    const code = await rekeyOn([`file://${s.storage}`, "--passphrase-file", old], output, prompt);
    assertEquals(code, 0, output.text);
    assertEquals([otherCode, other.stdout], [1, []], other.text);
    assertEquals(other.stderr.length, 1, other.stderr.join("\n"));
    assertMatch(
      other.stderr[0],
      /^Cannot rekey backup: the server refused the rewrapped key: another rekey is running on its backup directory .*: wait for it to finish, then run this again; key\.json was not changed$/,
    );
    assertEquals([await opens(host), await opens(node), await opens(old)], [true, false, false]);
  });
});

Deno.test("encrypted server backup: a rekey whose key.json the server stored but whose answer was lost says key.json may hold the new wraps and what to do, and the same command run again finishes it", async () => {
  await withRekeyedServer(async ({ s, secret, opens, rekeyOn }) => {
    const request = WireConnection.prototype.request;
    const old = secret("old", PASSPHRASE), fresh = secret("new", "new passphrase");
    let lost = 0;
    // The server takes the new key.json; its answer never comes back.
    WireConnection.prototype.request = async function (bytes, ...rest) {
      const reply = await request.call(this, bytes, ...rest);
      if (bytes[0] !== V2Type.SealedKeyIf) return reply;
      lost++;
      throw new ConnectionLostError("the server closed the connection");
    };
    const args = [s.url, "--passphrase-file", old, "--new-passphrase-file", fresh];
    const output = new BufferedOutput();
    const code = await rekeyOn(args, output);
    WireConnection.prototype.request = request;
    assertEquals([code, lost, output.stdout], [1, 1, []], output.text);
    assertEquals(output.stderr.length, 1, output.text);
    assertMatch(
      output.stderr[0],
      /^Cannot rekey backup: .*the server closed the connection.*: key\.json may hold the new wraps all the same: keep the new secret, and run the same rekey again, which finishes it or says which secret opens the key now$/,
    );
    const again = new BufferedOutput();
    assertEquals(await rekeyOn(args, again), 0, again.text);
    assertMatch(again.stdout[0], /^Note: the current secret given does not open the key/);
    assertEquals([await opens(fresh), await opens(old)], [true, false]);
  });
});

Deno.test("encrypted server backup: a rekey whose new key.json never reached the server (its connection refused, or cut before the key was written) says key.json is as it was, not that it may hold the new wraps; the same command run again rekeys it", async () => {
  await withRekeyedServer(async ({ s, secret, rekeyOn }) => {
    const open = WireConnection.open;
    const send = WireConnection.prototype.send;
    const fresh = secret("new", "new passphrase");
    const opens = (passphrase: string) =>
      unlockDir(s.storage, {}, () => Promise.resolve(passphrase)).then(() => true, () => false);
    // The current passphrase is asked once the server's copy is fetched: the store comes next.
    let stored = false;
    const asked = () => {
      stored = true;
      return Promise.resolve(PASSPHRASE);
    };
    const args = [s.url, "--new-passphrase-file", fresh];
    const faults: [string, () => void, RegExp][] = [
      ["refused", () => {
        WireConnection.open = (...rest) =>
          stored
            ? Promise.reject(
              new ConnectionLostError("connecting to the server: Connection refused"),
            )
            : open.apply(WireConnection, rest);
      }, /Connection refused/],
      ["cut before written", () => {
        WireConnection.prototype.send = function (bytes) {
          if (bytes[0] !== V2Type.SealedKeyIf) return send.call(this, bytes);
          this.close();
          return Promise.reject(
            new ConnectionLostError("sending to the server: Broken pipe (os error 32)"),
          );
        };
      }, /Broken pipe/],
    ];
    for (const [name, fault, said] of faults) {
      stored = false;
      fault();
      const output = new BufferedOutput();
      const code = await rekeyOn(args, output, asked);
      WireConnection.open = open;
      WireConnection.prototype.send = send;
      assertEquals(
        [name, code, output.stdout, output.stderr.length],
        [name, 1, [], 1],
        output.text,
      );
      assert(!output.stderr[0].includes("may hold"), output.stderr[0]);
      assertMatch(output.stderr[0], said);
      assertMatch(output.stderr[0], /: key\.json is as it was \(the old secrets open it\)$/);
      assertEquals([await opens(PASSPHRASE), await opens("new passphrase")], [true, false]);
    }
    const again = new BufferedOutput();
    assertEquals(await rekeyOn(args, again, asked), 0, again.text);
    assertMatch(again.stdout[0], /^Rewrapped the key of /);
    assertEquals([await opens("new passphrase"), await opens(PASSPHRASE)], [true, false]);
  });
});

Deno.test("encrypted server backup: a rekey the server answers with a storage failure after its new key.json may be in place (a failed fsync of the directory after the rename) says key.json may hold the new wraps; the same command run again finishes it", async () => {
  await withRekeyedServer(async ({ s, secret, opens, rekeyOn }) => {
    const request = WireConnection.prototype.request;
    const old = secret("old", PASSPHRASE), fresh = secret("new", "new passphrase");
    // The server renamed the new key.json into place, then failed to sync its directory.
    WireConnection.prototype.request = async function (bytes, ...rest) {
      const reply = await request.call(this, bytes, ...rest);
      if (bytes[0] !== V2Type.SealedKeyIf || reply.type !== V2Type.Ack) return reply;
      const frame = encodeError({
        code: ErrorCode.Storage,
        version: 0,
        message: "the server cannot store it: Input/output error (os error 5)",
      });
      return { type: V2Type.Error, payload: frame.subarray(5, frame.length - 4) };
    };
    const args = [s.url, "--passphrase-file", old, "--new-passphrase-file", fresh];
    const output = new BufferedOutput();
    const code = await rekeyOn(args, output);
    WireConnection.prototype.request = request;
    assertEquals([code, output.stdout, output.stderr.length], [1, [], 1], output.text);
    assertMatch(
      output.stderr[0],
      /Input\/output error.*: key\.json may hold the new wraps all the same: keep the new secret, and run the same rekey again/,
    );
    const again = new BufferedOutput();
    assertEquals(await rekeyOn(args, again), 0, again.text);
    assertMatch(again.stdout[0], /^Note: the current secret given does not open the key/);
    assertEquals([await opens(fresh), await opens(old)], [true, false]);
  });
});
