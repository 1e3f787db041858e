/**
 * New S3 backups seeded from what a node has, against a real S3 server (Ceph's RGW):
 * `upgrade --to s3://...` copies a Python plugin's v1 file, or a plain cln-backup directory,
 * into one that restores to the same database, that the plugin continues through its
 * launcher, and that compacts; `mirror s3://...` adds one beside a file backup.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { FakeLightningd, throughLauncher } from "./support/fake_lightningd.ts";
import { PRE_4090_BACKUP } from "./support/fixtures.ts";
import { makeEncryptedBackup, PASSPHRASE } from "./support/encrypted.ts";
import { objectsOf, restoredS3WithKey } from "./support/encrypted_s3.ts";
import { readKeyFile } from "../lib/crypto/key_file.ts";
import { decodeSegmentHeader } from "../lib/format/segment.ts";
import { restoredFromS3, type Rgw, writeCredentials } from "./support/rgw.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { openReader } from "../lib/backends/open.ts";
import { compactS3 } from "../lib/backends/s3/compaction.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { upgrade } from "../lib/cli/upgrade.ts";
import { mirror } from "../lib/cli/mirror.ts";
import { init } from "../lib/cli/init.ts";
import {
  BufferedOutput,
  makeBackup,
  makeNodeDir,
  recordedChanges,
  removeNodeDir,
} from "./support/cli_testing.ts";

/** A lightning dir whose backup.lock names `backendUrl`, with the S3 keys beside it. */
function nodeFor(s: Rgw, backendUrl: string): { dir: string; base: string } {
  const dir = makeNodeDir();
  writeCredentials(dir, s.credentials);
  Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: backendUrl }));
  return { dir, base: Deno.realPathSync(`${dir}/..`) };
}

async function run(...args: string[]): Promise<BufferedOutput & { code: number }> {
  const output = new BufferedOutput();
  const code = await upgrade(args, output);
  return Object.assign(output, { code });
}

const test = (name: string, fn: (s: Rgw) => Promise<void>) => rgwTest(name, () => fn(sharedRgw()));

test("upgrade --to s3://: the v1 file's last version, continued by the plugin, then compacted", async (s) => {
  const url = s.url(await s.bucket());
  const { dir, base } = nodeFor(s, "file:///placeholder");
  try {
    const v1Url = `file://${base}/backup.dbak`;
    Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: v1Url, note: 1 }));
    restoreBackup(openReader(v1Url), dir); // The node where the Python plugin left it.

    const done = await run("--lightning-dir", dir, "--to", url);
    assertEquals(done.code, 0, done.transcript);
    assertMatch(
      done.stdout[0],
      /^Copied ".*backup.dbak" into s3:.* \(versions 1 to 46, 46 records\)/,
    );
    // The command as the operator pastes it: the URL's "&" quoted for the shell.
    assert(
      done.stdout[1].includes(
        `check it with "AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… cln-backup verify '${url}'"`,
      ),
      done.stdout[1],
    );
    assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)), {
      backend_url: url,
      note: 1,
    });
    assertEquals(await restoredFromS3(s, url, base), dumpDatabase(`${dir}/lightningd.sqlite3`));
    const kinds = (await listBackup(s.client(url))).map((e) => e.kind);
    assertEquals(kinds.filter((k) => k === "change").length, 1, "the newest change on its own");

    // lightningd starts with the plugin through the new launcher, which reaches S3.
    const node = FakeLightningd.spawn({
      lightningDir: dir,
      ...throughLauncher(dir),
    });
    for (let i = 0; i < 3; i++) {
      const outcome = await node.transaction([
        `INSERT INTO vars (name, intval) VALUES ('after-upgrade-${i}', ${i})`,
      ]);
      assertEquals(outcome, "committed", node.aborted);
    }
    assertEquals((await node.close()).code, 0, await node.stderr());
    const dump = dumpDatabase(`${dir}/lightningd.sqlite3`);
    assertEquals(await restoredFromS3(s, url, base), dump);
    assertEquals((await compactS3(url, s.credentials)).base_version, 48);
    assertEquals(await restoredFromS3(s, url, base), dump);
  } finally {
    removeNodeDir(dir);
  }
});

test("upgrade --to s3:// moves a plain backup, encrypted with --encrypt; refuses an encrypted one and a used prefix", async (s) => {
  const url = s.url(await s.bucket());
  const dir = makeNodeDir("restart");
  writeCredentials(dir, s.credentials);
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    const plain = await makeBackup(`${base}/plain`, recordedChanges(["fresh-start", "restart"]));
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: plain }));
    const encryptedUrl = s.url(await s.bucket());
    const passphrase = `${base}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const encrypted = await run(
      "--lightning-dir",
      dir,
      "--to",
      encryptedUrl,
      "--encrypt",
      "--passphrase-file",
      passphrase,
    );
    assertEquals(encrypted.code, 0, encrypted.stderr.join("\n"));
    assertMatch(encrypted.text, /records, encrypted\); ".*plain" is untouched/);
    const key = (await readKeyFile(dir))!;
    const node = dumpDatabase(`${dir}/lightningd.sqlite3`);
    assertEquals(await restoredS3WithKey(s, encryptedUrl, key, base), node);
    for (const { key: name, bytes } of await objectsOf(s, encryptedUrl)) {
      if (!/\.clnb$/.test(name)) continue;
      assert(decodeSegmentHeader(bytes, name).keyId, `${name} is sealed`);
    }
    Deno.removeSync(`${dir}/backup.key`);
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: plain }));

    const done = await run("--lightning-dir", dir, "--to", url);
    assertEquals(done.code, 0, done.transcript);
    assertEquals(await restoredFromS3(s, url, base), dumpDatabase(`${dir}/lightningd.sqlite3`));

    // The prefix holds a backup now; and an encrypted backup stays on files.
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: plain }));
    const used = await run("--lightning-dir", dir, "--to", url);
    assertEquals(used.code, 1);
    assertMatch(used.stderr[0], /already holds objects .*choose a new prefix/);
    await makeEncryptedBackup(`${base}/sealed`);
    Deno.writeTextFileSync(
      `${dir}/backup.lock`,
      JSON.stringify({ backend_url: `file://${base}/sealed` }),
    );
    const sealed = await run("--lightning-dir", dir, "--to", s.url(await s.bucket()));
    assertEquals(sealed.code, 1);
    assertMatch(sealed.stderr[0], /sealed" is encrypted, and copying an encrypted backup to S3/);
  } finally {
    removeNodeDir(dir);
  }
});

test("upgrade --encrypt --to s3://: a plain S3 backup's encrypted copy, which the plugin continues", async (s) => {
  const plainUrl = s.url(await s.bucket());
  const url = s.url(await s.bucket());
  const dir = makeNodeDir("restart");
  writeCredentials(dir, s.credentials);
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    const output = new BufferedOutput();
    assertEquals(await init([plainUrl, "--lightning-dir", dir], output), 0, output.transcript);
    const noTarget = await run("--lightning-dir", dir, "--encrypt");
    assertEquals(noTarget.code, 1);
    assertMatch(noTarget.stderr[0], /is an S3 backup: name the empty prefix .* with --to s3:/);
    const passphrase = `${Deno.realPathSync(`${dir}/..`)}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const copied = await run(
      "--lightning-dir",
      dir,
      "--encrypt",
      "--to",
      url,
      "--passphrase-file",
      passphrase,
    );
    assertEquals(copied.code, 0, copied.stderr.join("\n"));
    assertMatch(copied.text, /records, encrypted\); "s3:.*" is untouched/);
    assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)).backend_url, url);
    const key = (await readKeyFile(dir))!;
    const node = FakeLightningd.spawn({ lightningDir: dir, env: { AWS_ACCESS_KEY_ID: "" } });
    const outcome = await node.transaction(["INSERT INTO vars (name, intval) VALUES ('e', 1)"]);
    assertEquals(outcome, "committed", node.aborted);
    assertEquals((await node.close()).code, 0, await node.stderr());
    const database = dumpDatabase(`${dir}/lightningd.sqlite3`);
    assertEquals(await restoredS3WithKey(s, url, key, base), database);
    const again = await run("--lightning-dir", dir, "--encrypt", "--to", s.url(await s.bucket()));
    assertEquals(again.code, 0, again.stderr.join("\n"));
    assertMatch(again.text, /encrypted: nothing to upgrade/);
  } finally {
    removeNodeDir(dir);
  }
});

test("upgrade of a plain S3 backup beside a key file (an interrupted --encrypt's) is refused, not 'nothing to upgrade'", async (s) => {
  const plainUrl = s.url(await s.bucket());
  const dir = makeNodeDir("restart");
  writeCredentials(dir, s.credentials);
  try {
    const output = new BufferedOutput();
    assertEquals(await init([plainUrl, "--lightning-dir", dir], output), 0, output.transcript);
    const stale = JSON.stringify({ cln_backup_data_key: "11".repeat(32) }) + "\n";
    Deno.writeTextFileSync(`${dir}/backup.key`, stale, { mode: 0o600 });
    const refused = await run("--lightning-dir", dir);
    assertEquals(refused.code, 1, refused.text);
    assertEquals(refused.stderr.length, 1, refused.text);
    assertMatch(
      refused.stderr[0],
      /^Cannot upgrade backup: ".*\/backup\.key" holds a key, but backup\.lock names the plain backup s3:.*: run ".*upgrade --encrypt" again, to an empty prefix .*or move the key file aside/,
    );
    assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)).backend_url, plainUrl);
  } finally {
    removeNodeDir(dir);
  }
});

test("mirror s3://: a node with a file backup gains an S3 copy, and the plugin writes both", async (s) => {
  const url = s.url(await s.bucket());
  const dir = makeNodeDir("restart");
  writeCredentials(dir, s.credentials);
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    const first = await makeBackup(`${base}/first`, recordedChanges(["fresh-start", "restart"]));
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: first }));
    const output = new BufferedOutput();
    assertEquals(await mirror([url, "--lightning-dir", dir], output), 0, output.transcript);
    const database = `${dir}/lightningd.sqlite3`;
    assertEquals(await restoredFromS3(s, url, base), dumpDatabase(database));
    const node = FakeLightningd.spawn({ lightningDir: dir, env: { AWS_ACCESS_KEY_ID: "" } });
    for (let i = 0; i < 3; i++) {
      const outcome = await node.transaction([
        `INSERT INTO vars (name, intval) VALUES ('mirrored-${i}', ${i})`,
      ]);
      assertEquals(outcome, "committed", node.aborted);
    }
    assertEquals((await node.close()).code, 0, await node.stderr());
    assertEquals(await restoredFromS3(s, url, base), dumpDatabase(database));
    const path = `${base}/first-restored.sqlite3`;
    restoreBackup(openReader(first), path);
    assertEquals(dumpDatabase(path), dumpDatabase(database));
  } finally {
    removeNodeDir(dir);
  }
});
