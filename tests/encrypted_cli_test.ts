/**
 * The operator's side of encrypted file backups, through the CLI commands: init --encrypt
 * (passphrase and age recipient), status without the key, restore and verify with the
 * passphrase from a file or the environment and with the identity, each failure in one line
 * with nothing left at the target (wrong passphrase, wrong identity, no secret, missing
 * key.json, a tampered record), rekey then restore with the new secret only, the plugin's key
 * file written again, upgrade --encrypt of a plain backup keeping every version, and refusals
 * of a socket: URL.
 */
import { cli } from "./support/encrypted_server.ts";
import { makeEncryptedBackup } from "./support/encrypted.ts";
import { dirname } from "node:path";
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { loadFixture } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import {
  BufferedOutput,
  makeBackup,
  makeNodeDir,
  recordedChanges,
  removeNodeDir,
} from "./support/cli_testing.ts";
import { COMMANDS } from "../lib/cli/main.ts";
import { init } from "../lib/cli/init.ts";
import { upgrade } from "../lib/cli/upgrade.ts";
import { rekey } from "../lib/cli/rekey.ts";
import { restore } from "../lib/cli/restore.ts";
import { verify } from "../lib/cli/verify.ts";
import { ageRecipientOf, newAgeIdentity } from "../lib/crypto/primitives.ts";
import { KEY_FILE, readKeyFile } from "../lib/crypto/key_file.ts";
import { readChain } from "../lib/format/chain.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { FileBackend } from "../lib/backends/file/writer.ts";
import { openAtStart } from "../lib/plugin/startup.ts";
import type { Prompt } from "../lib/cli/secrets.ts";
import { ServerStorage } from "../lib/server/storage.ts";

const noTerminal: Prompt = () => Promise.resolve(undefined);

async function run(
  name: string,
  args: string[],
  prompt: Prompt = noTerminal,
): Promise<{ code: number; out: string; err: string[] }> {
  const output = new BufferedOutput();
  const command = { init, upgrade, rekey, restore, verify }[name as "init"];
  const code = command
    ? await command(args, output, prompt)
    : await (await COMMANDS[name]())(args, output);
  return { code, out: output.text, err: output.stderr };
}

/** A node at fresh-start's end with an encrypted backup for a passphrase file and an identity. */
async function encryptedNode() {
  const dir = makeNodeDir("fresh-start");
  const base = `${dir}/..`;
  const passphraseFile = `${base}/passphrase`;
  Deno.writeTextFileSync(passphraseFile, "first passphrase\n", { mode: 0o600 });
  const identity = await newAgeIdentity();
  const identityFile = `${base}/identity`;
  Deno.writeTextFileSync(identityFile, `# created: now\n${identity}\n`, { mode: 0o600 });
  const url = `file://${base}/backup`;
  const result = await run("init", [
    "--encrypt",
    "--passphrase-file",
    passphraseFile,
    "--recipient",
    await ageRecipientOf(identity),
    "--lightning-dir",
    dir,
    url,
  ]);
  assertEquals(result.code, 0, result.err.join("\n"));
  return { dir, base, url, passphraseFile, identityFile, backup: `${base}/backup` };
}

const expected = dumpDatabase(loadFixture("fresh-start").database);

Deno.test("init --encrypt: restore and verify need the secret; status does not", async () => {
  const node = await encryptedNode();
  try {
    assertEquals(Deno.statSync(`${node.dir}/${KEY_FILE}`).mode! & 0o777, 0o600);
    const chain = readChain(node.backup);
    assert([...chain.bases, ...chain.logs].every((s) => s.header.keyId !== undefined));
    assert(existsSync(`${node.backup}/key.json`));

    const status = await run("status", [node.url]);
    assertEquals(status.code, 0);
    assertMatch(
      status.out,
      /encryption: encrypted \(XChaCha20-Poly1305\), key wrapped for passphrase, age recipient age1\w+; read without the key/,
    );
    assertMatch(status.out, /versions: +11 to 11/);

    const restore = (target: string, ...secret: string[]) =>
      run("restore", [node.url, `${node.base}/${target}`, ...secret]);
    assertEquals((await restore("a.sqlite3", "--passphrase-file", node.passphraseFile)).code, 0);
    assertEquals(dumpDatabase(`${node.base}/a.sqlite3`), expected);
    assertEquals((await restore("b.sqlite3", "--identity", node.identityFile)).code, 0);
    assertEquals(dumpDatabase(`${node.base}/b.sqlite3`), expected);
    // On a terminal it asks.
    const asked = await run(
      "restore",
      [node.url, `${node.base}/c.sqlite3`],
      () => Promise.resolve("first passphrase"),
    );
    assertEquals(asked.code, 0, asked.err.join());
    // From the environment, in a process of its own: this one's is every test file's.
    const verify = await cli(["verify", node.url], { CLN_BACKUP_PASSPHRASE: "first passphrase" });
    assertEquals(verify.code, 0, verify.stderr);
    assertMatch(verify.stdout, /^OK: /);

    // Each failure: one line, exit 1, nothing at the target.
    const wrong = `${node.base}/wrong`;
    Deno.writeTextFileSync(wrong, "second passphrase\n", { mode: 0o600 });
    const otherIdentity = `${node.base}/other-identity`;
    Deno.writeTextFileSync(otherIdentity, await newAgeIdentity(), { mode: 0o600 });
    for (
      const [secret, why] of [
        [["--passphrase-file", wrong], /the passphrase given does not open the backup's key/],
        [["--identity", otherIdentity], /the identity given does not open the backup's key/],
        [[], /is encrypted: give its passphrase \(CLN_BACKUP_PASSPHRASE/],
      ] as const
    ) {
      const failed = await restore("x.sqlite3", ...secret);
      assertEquals(failed.code, 1);
      assertEquals(failed.err.length, 1, failed.err.join("\n"));
      assertMatch(failed.err[0], /^Cannot unlock backup: /);
      assertMatch(failed.err[0], why);
      assert(!existsSync(`${node.base}/x.sqlite3`));
    }
    const verifyFails = await run("verify", [node.url, "--passphrase-file", wrong]);
    assertEquals(verifyFails.code, 1);
    assertMatch(verifyFails.err[0], /^FAIL: Cannot unlock backup: the passphrase given/);
  } finally {
    removeNodeDir(node.dir);
  }
});

Deno.test("rekey: only the new secret opens the key; no record changes; the key file again", async () => {
  const node = await encryptedNode();
  try {
    const segments = [...readChain(node.backup).bases, ...readChain(node.backup).logs]
      .map((s) => Deno.readFileSync(s.path));
    const newFile = `${node.base}/new-passphrase`;
    Deno.writeTextFileSync(newFile, "second passphrase\n", { mode: 0o600 });
    const rekeyed = await run("rekey", [
      node.url,
      "--identity",
      node.identityFile,
      "--new-passphrase-file",
      newFile,
    ]);
    assertEquals(rekeyed.code, 0, rekeyed.err.join());
    assertMatch(
      rekeyed.out,
      /Rewrapped the key .* for a new passphrase; the old secrets no longer/,
    );
    assertEquals(
      [...readChain(node.backup).bases, ...readChain(node.backup).logs]
        .map((s) => Deno.readFileSync(s.path)),
      segments,
    );
    const old = await run("restore", [
      node.url,
      `${node.base}/old.sqlite3`,
      "--passphrase-file",
      node.passphraseFile,
    ]);
    assertEquals(old.code, 1);
    const oldIdentity = await run("restore", [
      node.url,
      `${node.base}/old.sqlite3`,
      "--identity",
      node.identityFile,
    ]);
    assertEquals(oldIdentity.code, 1);
    assert(!existsSync(`${node.base}/old.sqlite3`));
    const restored = await run("restore", [
      node.url,
      `${node.base}/new.sqlite3`,
      "--passphrase-file",
      newFile,
    ]);
    assertEquals(restored.code, 0, restored.err.join());
    assertEquals(dumpDatabase(`${node.base}/new.sqlite3`), expected);
    // The plugin's key file, lost, is written again from the new passphrase.
    const key = (await readKeyFile(node.dir))!;
    Deno.removeSync(`${node.dir}/${KEY_FILE}`);
    const again = await run("rekey", [
      node.url,
      "--passphrase-file",
      newFile,
      "--key-file",
      node.dir,
    ]);
    assertEquals(again.code, 0, again.err.join());
    assertEquals((await readKeyFile(node.dir))!.bytes, key.bytes);
    assertEquals(again.out.includes("Rewrapped"), false);
  } finally {
    removeNodeDir(node.dir);
  }
});

Deno.test("a missing key.json or a tampered record: one line, nothing restored", async () => {
  const node = await encryptedNode();
  try {
    const restore = () =>
      run("restore", [
        node.url,
        `${node.base}/r.sqlite3`,
        "--passphrase-file",
        node.passphraseFile,
      ]);
    Deno.renameSync(`${node.backup}/key.json`, `${node.base}/key.json`);
    const missing = await restore();
    assertEquals(missing.code, 1);
    assertMatch(
      missing.err[0],
      /^Cannot unlock backup: the backup is encrypted but its wrapped key ".*key\.json" is missing: put key\.json back/,
    );
    Deno.renameSync(`${node.base}/key.json`, `${node.backup}/key.json`);
    // A byte of the base's first part flipped (its CRCs recomputed would be caught the same way:
    // see encrypted_tamper_test.ts); the restore stops, and no file is left.
    const base = readChain(node.backup).bases[0].path;
    const bytes = Deno.readFileSync(base);
    bytes[64 + 32 + 30] ^= 1;
    Deno.writeFileSync(base, bytes);
    const tampered = await restore();
    assertEquals(tampered.code, 1);
    assertEquals(tampered.err.length, 1);
    assertMatch(
      tampered.err[0],
      /^Cannot read backup: record payload checksum mismatch at offset 64/,
    );
    assertEquals(
      [...Deno.readDirSync(node.base)].some((e) => e.name.startsWith("r.sqlite3")),
      false,
    );
  } finally {
    removeNodeDir(node.dir);
  }
});

Deno.test("status of a backup holding another backup's key.json shows no wraps: none opens it", async () => {
  const node = await encryptedNode();
  try {
    const other = `${node.base}/other`;
    await makeEncryptedBackup(other);
    Deno.copyFileSync(`${other}/key.json`, `${node.backup}/key.json`);
    const status = await run("status", [node.url]);
    assertEquals(status.code, 0);
    assertMatch(
      status.out,
      /encryption: encrypted \(XChaCha20-Poly1305\), key wrapped for \(no key\.json of this backup\);/,
    );
  } finally {
    removeNodeDir(node.dir);
  }
});

Deno.test("upgrade --encrypt: a plain backup becomes encrypted, every version kept", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = dirname(dir);
  try {
    const changes = recordedChanges(["restart", "activity"]);
    const plain = await makeBackup(`${base}/plain`, changes, {
      version: 11,
      path: loadFixture("fresh-start").database,
    });
    writeLockFile(dir, { backend_url: plain });
    const passphraseFile = `${base}/passphrase`;
    Deno.writeTextFileSync(passphraseFile, "upgrade passphrase\n", { mode: 0o600 });
    const upgraded = await run("upgrade", [
      "--lightning-dir",
      dir,
      "--encrypt",
      "--passphrase-file",
      passphraseFile,
    ]);
    assertEquals(upgraded.code, 0, upgraded.err.join("\n"));
    const url = `file://${base}/plain.encrypted`;
    assertMatch(
      upgraded.out,
      /into ".*plain\.encrypted", encrypted; the plain backup is untouched/,
    );
    assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)).backend_url, url);
    assert(readChain(`${base}/plain.encrypted`).keyId !== undefined);
    for (const version of [11, 15, 200, 479]) {
      const from = (u: string, name: string, ...secret: string[]) =>
        run("restore", [
          u,
          `${base}/${name}-${version}.sqlite3`,
          "--to-version",
          String(version),
          ...secret,
        ]);
      assertEquals((await from(plain, "plain")).code, 0);
      const enc = await from(url, "enc", "--passphrase-file", passphraseFile);
      assertEquals(enc.code, 0, enc.err.join());
      assertEquals(
        dumpDatabase(`${base}/enc-${version}.sqlite3`),
        dumpDatabase(`${base}/plain-${version}.sqlite3`),
        `version ${version}`,
      );
    }
    // The plugin continues it with its key file.
    const startup = await openAtStart(dir);
    assert(!("error" in startup.backend), JSON.stringify(startup.backend));
    const backend = startup.backend as FileBackend;
    assertEquals(backend.state().version, 479);
    backend.close();
    // Again: it is encrypted already.
    const again = await run("upgrade", ["--lightning-dir", dir, "--encrypt"]);
    assertEquals(again.code, 0);
    assertMatch(again.out, /encrypted: nothing to upgrade/);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("encryption and socket: URLs are never mixed by mistake", async () => {
  const dir = makeNodeDir("fresh-start");
  try {
    const refused = await run("init", [
      "--encrypt",
      "--lightning-dir",
      dir,
      "socket:127.0.0.1:9",
    ], () => Promise.resolve("p"));
    assertEquals(refused.code, 1);
    assertMatch(
      refused.err[0],
      /^Cannot init backup: --encrypt takes a file:\/\/\/ or s3:\/\/ backup/,
    );
    const plainOnly = await run("init", ["--encrypt", "file:///tmp/x"]);
    assertEquals(plainOnly.code, 1);
    assertMatch(plainOnly.err[0], /--encrypt needs the node's lightning dir/);
    // A key file beside a backup.lock naming a server: the plugin refuses to start.
    const node = await encryptedNode();
    try {
      // A server serves an encrypted backup without its key, and takes no plain change into
      // it (wire v2 only: tests/socket_encrypted_test.ts).
      const served = ServerStorage.open(node.url, node.backup, () => {});
      try {
        assertEquals(served.state().encrypted, true);
        await assertRejects(
          () => served.append({ version: 1, statements: ["DELETE FROM vars"] }),
          /is plain, and the backup is encrypted/,
        );
      } finally {
        served.close();
      }
      writeLockFile(node.dir, { backend_url: "socket:127.0.0.1:9" });
      const startup = await openAtStart(node.dir);
      assert("error" in startup.backend);
      assertMatch(
        startup.backend.error,
        /^Cannot start backup: ".*backup\.key" holds an encryption key, but backup\.lock names the server socket:127\.0\.0\.1:9 over wire v1 \(no backup\.credential\), which takes plain backups only/,
      );
    } finally {
      removeNodeDir(node.dir);
    }
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("upgrade --encrypt beside copies: refused, as the plain copies would stay plain", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = dirname(dir);
  try {
    const snapshot = { version: 11, path: loadFixture("fresh-start").database };
    const plain = await makeBackup(`${base}/plain`, [], snapshot);
    const copy = await makeBackup(`${base}/copy`, [], snapshot);
    for (const lock of [{ mirror_urls: [copy] }, { async_urls: [copy] }]) {
      writeLockFile(dir, { backend_url: plain, ...lock });
      const passphraseFile = `${base}/passphrase`;
      Deno.writeTextFileSync(passphraseFile, "upgrade passphrase\n", { mode: 0o600 });
      const refused = await run("upgrade", [
        "--lightning-dir",
        dir,
        "--encrypt",
        "--passphrase-file",
        passphraseFile,
      ]);
      assertEquals(refused.code, 1, refused.out);
      assertEquals(refused.err.length, 1, refused.err.join("\n"));
      assertMatch(refused.err[0], /^Cannot upgrade backup: backup.lock names other destinations/);
      assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)).backend_url, plain);
      assert(!existsSync(`${base}/plain.encrypted`));
      assert(!existsSync(`${dir}/${KEY_FILE}`));
    }
    // An empty list, left by a hand edit, names no copy.
    writeLockFile(dir, { backend_url: plain, mirror_urls: [] });
    const upgraded = await run("upgrade", [
      "--lightning-dir",
      dir,
      "--encrypt",
      "--passphrase-file",
      `${base}/passphrase`,
    ]);
    assertEquals(upgraded.code, 0, upgraded.err.join("\n"));
    assert(existsSync(`${dir}/${KEY_FILE}`));
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("upgrade --encrypt: a refusal of its secret says upgrade, not init", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = dirname(dir);
  try {
    const plain = await makeBackup(`${base}/plain`, [], {
      version: 11,
      path: loadFixture("fresh-start").database,
    });
    writeLockFile(dir, { backend_url: plain });
    const refused = await run("upgrade", ["--lightning-dir", dir, "--encrypt"]);
    assertEquals(refused.code, 1);
    assertEquals(refused.err.length, 1, refused.err.join("\n"));
    assertMatch(refused.err[0], /^Cannot upgrade backup: --encrypt needs a passphrase/);
    assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)).backend_url, plain);
    assert(!existsSync(`${base}/plain.encrypted`));
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("an identity given as a recipient, or an empty passphrase: one line, no secret shown, nothing changed", async () => {
  const node = await encryptedNode();
  try {
    const identity = Deno.readTextFileSync(node.identityFile).split("\n")[1];
    const empty = `${node.base}/empty-passphrase`;
    Deno.writeTextFileSync(empty, "\n", { mode: 0o600 });
    const other = makeNodeDir("fresh-start");
    try {
      const otherUrl = `file://${dirname(other)}/backup`;
      const keyJson = Deno.readFileSync(`${node.backup}/key.json`);
      for (
        const [name, args, action, why] of [
          [
            "init",
            ["--encrypt", "--recipient", identity, "--lightning-dir", other, otherUrl],
            "init",
            /is an age identity .*give its public key/,
          ],
          [
            "init",
            ["--encrypt", "--passphrase-file", empty, "--lightning-dir", other, otherUrl],
            "init",
            /the passphrase is empty: give a long random one/,
          ],
          [
            "rekey",
            [node.url, "--identity", node.identityFile, "--new-recipient", identity],
            "rekey",
            /is an age identity .*give its public key/,
          ],
          [
            "rekey",
            [node.url, "--identity", node.identityFile, "--new-passphrase-file", empty],
            "rekey",
            /the passphrase is empty/,
          ],
          [
            "rekey",
            [node.url, "--identity", node.identityFile, "--new-recipient", "age1typo"],
            "rekey",
            /"age1typo" is not an age X25519 recipient/,
          ],
        ] as const
      ) {
        const refused = await run(name, [...args]);
        const line = refused.err.join("\n");
        assertEquals(refused.code, 1, line);
        assertEquals(refused.err.length, 1, line);
        assertMatch(line, new RegExp(`^Cannot ${action} backup: `));
        assertMatch(line, why);
        assertMatch(line, /nothing was changed$/);
        assert(!line.includes(identity.slice(15)), `the secret shown: ${line}`);
      }
      assert(!existsSync(`${dirname(other)}/backup`));
      assert(!existsSync(`${other}/backup.lock`));
      assertEquals(Deno.readFileSync(`${node.backup}/key.json`), keyJson);
    } finally {
      removeNodeDir(other);
    }
  } finally {
    removeNodeDir(node.dir);
  }
});

Deno.test("a secret of a kind the key is not wrapped for: one line naming the kind that opens it, no prompt", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = dirname(dir);
  try {
    const identity = await newAgeIdentity();
    const recipient = await ageRecipientOf(identity);
    const identityFile = `${base}/identity`;
    Deno.writeTextFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
    const passphraseFile = `${base}/passphrase`;
    Deno.writeTextFileSync(passphraseFile, "a passphrase\n", { mode: 0o600 });
    const ageUrl = `file://${base}/age-only`;
    const passUrl = `file://${base}/passphrase-only`;
    const other = makeNodeDir("fresh-start");
    try {
      assertEquals(
        (await run("init", ["--encrypt", "--recipient", recipient, "--lightning-dir", dir, ageUrl]))
          .code,
        0,
      );
      assertEquals(
        (await run("init", [
          "--encrypt",
          "--passphrase-file",
          passphraseFile,
          "--lightning-dir",
          other,
          passUrl,
        ])).code,
        0,
      );
      let asked = 0;
      const terminal: Prompt = () => {
        asked++;
        return Promise.resolve("a passphrase");
      };
      for (
        const [url, secret, why] of [
          [
            ageUrl,
            ["--passphrase-file", passphraseFile],
            /wrapped for an age recipient only, which no passphrase opens: give the identity of age1\w+ \(--identity FILE/,
          ],
          [
            ageUrl,
            [],
            /is encrypted for an age recipient, not a passphrase: give the identity of age1\w+/,
          ],
          [
            passUrl,
            ["--identity", identityFile],
            /wrapped for a passphrase only, which no identity opens: give the passphrase/,
          ],
        ] as const
      ) {
        const target = `${base}/x.sqlite3`;
        const failed = await run("restore", [url, target, ...secret], terminal);
        assertEquals(failed.code, 1);
        assertEquals(failed.err.length, 1, failed.err.join("\n"));
        assertMatch(failed.err[0], /^Cannot unlock backup: /);
        assertMatch(failed.err[0], why);
        assert(!existsSync(target));
      }
      assertEquals(asked, 0, "asked for a passphrase that cannot open an age-only key");
      const right = await run("restore", [
        ageUrl,
        `${base}/ok.sqlite3`,
        "--identity",
        identityFile,
      ]);
      assertEquals(right.code, 0, right.err.join("\n"));
    } finally {
      removeNodeDir(other);
    }
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("rekey --key-file into a dir without backup.lock whose backup.key holds another key is refused", async () => {
  const node = await encryptedNode();
  const other = await encryptedNode();
  try {
    // A lightning dir being rebuilt: its backup.lock not back yet, another backup's key there.
    const target = `${node.base}/rebuilt`;
    Deno.mkdirSync(target);
    const otherKey = Deno.readFileSync(`${other.dir}/${KEY_FILE}`);
    Deno.writeFileSync(`${target}/${KEY_FILE}`, otherKey, { mode: 0o600 });
    const keyFile = (url: string, passphraseFile: string) =>
      run("rekey", [url, "--passphrase-file", passphraseFile, "--key-file", target]);
    const refused = await keyFile(node.url, node.passphraseFile);
    assertEquals(refused.code, 1);
    assertEquals(refused.err.length, 1, refused.err.join("\n"));
    assertMatch(
      refused.err[0],
      /^Cannot rekey backup: ".*rebuilt\/backup\.key" holds another key than file:.*: .*nothing was changed$/,
    );
    assertEquals(Deno.readFileSync(`${target}/${KEY_FILE}`), otherKey);
    // The backup whose key it holds writes it again (the same key).
    const same = await keyFile(other.url, other.passphraseFile);
    assertEquals(same.code, 0, same.err.join("\n"));
    assertEquals(Deno.readFileSync(`${target}/${KEY_FILE}`), otherKey);
    // Once it is moved away, the node's own is written.
    Deno.removeSync(`${target}/${KEY_FILE}`);
    const written = await keyFile(node.url, node.passphraseFile);
    assertEquals(written.code, 0, written.err.join("\n"));
    assertEquals((await readKeyFile(target))!.bytes, (await readKeyFile(node.dir))!.bytes);
  } finally {
    removeNodeDir(node.dir);
    removeNodeDir(other.dir);
  }
});

Deno.test("rekey --key-file into another node's lightning dir is refused, its own key kept", async () => {
  const node = await encryptedNode();
  const other = await encryptedNode();
  try {
    const own = Deno.readFileSync(`${other.dir}/${KEY_FILE}`);
    const refused = await run("rekey", [
      node.url,
      "--passphrase-file",
      node.passphraseFile,
      "--key-file",
      other.dir,
    ]);
    assertEquals(refused.code, 1);
    assertEquals(refused.err.length, 1, refused.err.join("\n"));
    assertMatch(
      refused.err[0],
      /^Cannot rekey backup: ".*backup\.lock" names file:.*, not file:.*: its key written there would replace that node's own.*nothing was changed$/,
    );
    assertEquals(Deno.readFileSync(`${other.dir}/${KEY_FILE}`), own);
    // Its own node's dir, the URL spelled with a trailing slash: written.
    const key = (await readKeyFile(node.dir))!;
    Deno.removeSync(`${node.dir}/${KEY_FILE}`);
    const again = await run("rekey", [
      `${node.url}/`,
      "--passphrase-file",
      node.passphraseFile,
      "--key-file",
      node.dir,
    ]);
    assertEquals(again.code, 0, again.err.join("\n"));
    assertEquals((await readKeyFile(node.dir))!.bytes, key.bytes);
  } finally {
    removeNodeDir(node.dir);
    removeNodeDir(other.dir);
  }
});
