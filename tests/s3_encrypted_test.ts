/**
 * Encrypted `s3://` backups end to end against a real S3 server (Ceph RGW): the recorded runs
 * through the real plugin (packing as it goes) restore equal to the node, to every run's end,
 * before and after compaction, and S3 holds ciphertext only; `init --encrypt` to S3 under the
 * launcher, `status` without the key, `verify`, and `rekey` then a restore with the new secret
 * only.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd, splitMessages } from "./support/fake_lightningd.ts";
import { loadFixture, SCENARIOS } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { status as pluginStatus } from "./support/plugin_session.ts";
import { type Rgw, writeCredentials } from "./support/rgw.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { makeEncryptedS3Backup, objectsOf, restoredS3WithKey } from "./support/encrypted_s3.ts";
import { PASSPHRASE } from "./support/encrypted.ts";
import { launchAndCommit } from "./support/launch_probe.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { writeKeyFile } from "../lib/crypto/key_file.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { compact } from "../lib/cli/compact.ts";
import { init } from "../lib/cli/init.ts";
import { rekey } from "../lib/cli/rekey.ts";
import { restore } from "../lib/cli/restore.ts";
import { status } from "../lib/cli/status.ts";
import { verify } from "../lib/cli/verify.ts";
import { LAUNCHER_NAME, parseLauncher, WORKER_CODE } from "../lib/cli/launcher.ts";
import { CREDENTIALS_FILE } from "../lib/backends/s3/credentials.ts";
import { SCRATCH_DIR } from "../lib/backends/plugin_scratch.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";
import { S3Backend } from "../lib/backends/s3/backend.ts";
import { S3Client, S3Error } from "../lib/backends/s3/client.ts";
import { fetchWrappedKey } from "../lib/backends/s3/key_object.ts";
import { unwrapKey } from "../lib/crypto/wrapped_key.ts";
import { decodeSegmentHeader } from "../lib/format/segment.ts";
import { decodeRecordHeader, isSealed } from "../lib/format/record.ts";

const test = rgwTest;

const fixtures = SCENARIOS.map(loadFixture);
const lastVersion = (raw: Uint8Array) =>
  splitMessages(raw).filter((m) => m.json.method === "db_write").at(-1)!.json.params
    .data_version as number;

const encoder = new TextEncoder();
/** Whether `needle` is somewhere in `bytes`. */
function holds(bytes: Uint8Array, needle: string): boolean {
  const n = encoder.encode(needle);
  outer: for (let i = 0; i + n.length <= bytes.length; i++) {
    for (let j = 0; j < n.length; j++) if (bytes[i + j] !== n[j]) continue outer;
    return true;
  }
  return false;
}

test("encrypted S3: the recorded runs restore, to every run's end, before and after packing and compaction; S3 holds ciphertext only", async () => {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket(), "nodes/enc");
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-s3-enc-" });
  try {
    const key = await makeEncryptedS3Backup(s, url);
    writeLockFile(dir, { backend_url: url });
    writeCredentials(dir, s.credentials);
    writeKeyFile(dir, key);
    const ends: { version: number; dump: string }[] = [];
    for (const fixture of fixtures) {
      const node = FakeLightningd.spawn({
        lightningDir: dir,
        chunking: { kind: "sizes", sizes: fixture.chunks },
        env: { AWS_ACCESS_KEY_ID: "", CLN_BACKUP_TEST_S3_PACK_EVERY: "40" },
      });
      node.volatileCommits();
      assertEquals(await node.replay(fixture.raw), "committed", node.aborted);
      assertEquals((await node.close()).code, 0, await node.stderr());
      assertEquals(node.logs.filter((l) => l.level === "broken"), []);
      assert(node.logs.some((l) => /\(encrypted\) is in S3/.test(l.message)));
      const dump = dumpDatabase(fixture.database);
      ends.push({ version: lastVersion(fixture.raw), dump });
      assertEquals(await restoredS3WithKey(s, url, key, dir), dump, `${fixture.name}: restore`);
      for (const end of ends) {
        const past = await restoredS3WithKey(s, url, key, dir, end.version);
        assertEquals(past, end.dump, `to ${end.version}`);
      }
    }
    const again = FakeLightningd.spawn({ lightningDir: dir, env: { AWS_ACCESS_KEY_ID: "" } });
    await again.init();
    assertEquals(pluginStatus(await again.request("backup-status", {})).encrypted, true);
    assertEquals((await again.close()).code, 0, await again.stderr());

    const entries = await listBackup(s.client(url));
    assert(entries.some((e) => e.kind === "pack"), "the plugin packed change objects");
    /** Every object is ciphertext: no statement, no SQLite page, in the clear. */
    const checkCiphertext = async () => {
      for (const { key: name, bytes } of await objectsOf(s, url)) {
        if (["backup-id", "key.json", "claim"].includes(name.split("/").at(-1)!)) continue;
        for (const clear of ["SQLite format 3", "UPDATE vars", "INSERT INTO", "CREATE TABLE"]) {
          assert(!holds(bytes, clear), `"${clear}" in the clear in ${name}`);
        }
        const records = name.endsWith(".clnr") ? bytes : bytes.subarray(64);
        if (!name.endsWith(".clnr")) assert(decodeSegmentHeader(bytes, name).keyId, name);
        // A base binds its object's name, not its first log: no flag an older reader refuses.
        if (name.includes("/base-")) {
          assertEquals(decodeSegmentHeader(bytes, name).firstLogBound, undefined, name);
        }
        assert(isSealed(decodeRecordHeader(records)!.codec), `${name}: a sealed record`);
      }
    };
    await checkCiphertext();

    const described = new BufferedOutput();
    assertEquals(await status([url], described), 0, described.stderr.join("\n"));
    assertMatch(
      described.text,
      /encryption: encrypted \(XChaCha20-Poly1305\), key wrapped for passphrase/,
    );
    const verified = new BufferedOutput();
    const passphrase = `${dir}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const secret = ["--passphrase-file", passphrase];
    assertEquals(await verify([url, ...secret], verified), 0, verified.stderr.join("\n"));
    const compacted = new BufferedOutput();
    assertEquals(await compact([url, ...secret], compacted), 0, compacted.stderr.join("\n"));
    assertMatch(verified.stdout[0], /^OK: "s3:\/\/.*" holds versions/);
    const after = await listBackup(s.client(url));
    assertEquals(after.filter((e) => e.kind === "base").length, 1);
    assertEquals(after.filter((e) => e.kind === "pack").length, 0, "compaction folded the packs");
    await checkCiphertext();
    const last = ends.at(-1)!;
    assertEquals(await restoredS3WithKey(s, url, key, dir), last.dump, "after compaction");
    assertEquals(
      await restoredS3WithKey(s, url, key, dir, last.version),
      last.dump,
      "after compaction, to the last run's end",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

test("encrypted S3: init --encrypt, the launcher's plugin writes and compacts, status without the key, rekey then restore with the new secret only", async () => {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket());
  const dir = makeNodeDir("restart");
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-s3-rekey-" });
  try {
    writeCredentials(dir, s.credentials);
    const passphraseFile = `${root}/passphrase`;
    Deno.writeTextFileSync(passphraseFile, "first secret\n", { mode: 0o600 });
    const output = new BufferedOutput();
    const args = [url, "--lightning-dir", dir, "--encrypt", "--passphrase-file", passphraseFile];
    assertEquals(await init(args, output), 0, output.stderr.join("\n"));
    assertMatch(output.text, /The backup is encrypted; the plugin's key is in ".*backup\.key"/);
    assertEquals(Deno.statSync(`${dir}/backup.key`).mode! & 0o777, 0o600);
    // The launcher grants what it granted before: backup.key is among what it reads.
    const launcher = `${dir}/${LAUNCHER_NAME}`;
    const real = Deno.realPathSync(dir);
    assertEquals(
      parseLauncher(Deno.readTextFileSync(launcher))!.args.filter((a) => a.startsWith("--allow")),
      [
        `--allow-read=${real}/backup.lock,${real}/backup.key,${real}/${CREDENTIALS_FILE},` +
        `${WORKER_CODE},${real}/${SCRATCH_DIR}`,
        `--allow-write=${real}/${SCRATCH_DIR}`,
        "--allow-sys=setPriority",
        `--allow-net=127.0.0.1:${s.port}`,
      ],
    );
    // The launcher's plugin writes, then compacts on its worker with the key it read.
    const lightningd = await launchAndCommit(dir, launcher, 6);
    try {
      await lightningd.init();
      const answer = await lightningd.request("backup-compact", {});
      assert(answer.error === undefined, JSON.stringify(answer));
      assert((pluginStatus(answer).versions_folded as number) >= 5, JSON.stringify(answer));
      const after = await lightningd.transaction(["DELETE FROM vars WHERE name = 'after'"]);
      assertEquals(after, "committed", lightningd.aborted);
      assertEquals((await lightningd.stop()).code, 0);
      assertEquals(lightningd.garbage, []);
      assertEquals(lightningd.logs.filter((l) => l.level === "broken"), []);
    } finally {
      await lightningd.kill().catch(() => {});
    }
    const bases = (await listBackup(s.client(url))).filter((e) => e.kind === "base");
    assertEquals(bases.length, 1);
    const base = await s.client(url).get(bases[0].key);
    assert(decodeSegmentHeader(base, bases[0].key).keyId, "the plugin's new base is sealed");
    const node = dumpDatabase(`${dir}/lightningd.sqlite3`);

    const described = new BufferedOutput();
    assertEquals(await status([url, "--json"], described), 0, described.stderr.join("\n"));
    const description = JSON.parse(described.stdout[0]);
    assertEquals([description.encrypted, description.wrappedFor], [true, ["passphrase"]]);

    const newFile = `${root}/new-passphrase`;
    Deno.writeTextFileSync(newFile, "second secret\n", { mode: 0o600 });
    const rekeyed = new BufferedOutput();
    assertEquals(
      await rekey(
        [url, "--passphrase-file", passphraseFile, "--new-passphrase-file", newFile],
        rekeyed,
      ),
      0,
      rekeyed.stderr.join("\n"),
    );
    assertMatch(rekeyed.text, /^Rewrapped the key of "s3:\/\/.*" for a new passphrase/);
    const old = new BufferedOutput();
    const refusedAt = `${root}/old.sqlite3`;
    assertEquals(await restore([url, refusedAt, "--passphrase-file", passphraseFile], old), 1);
    assertEquals(old.stderr.length, 1, old.stderr.join("\n"));
    assertMatch(old.stderr[0], /Cannot unlock backup: the passphrase given does not open/);
    assertEquals([...Deno.readDirSync(root)].map((e) => e.name).sort(), [
      "new-passphrase",
      "passphrase",
    ]);
    const restored = `${root}/restored.sqlite3`;
    const fresh = new BufferedOutput();
    assertEquals(
      await restore([url, restored, "--passphrase-file", newFile], fresh),
      0,
      fresh.stderr.join("\n"),
    );
    assertEquals(dumpDatabase(restored), node);
  } finally {
    removeNodeDir(dir);
    Deno.removeSync(root, { recursive: true });
  }
});

test("encrypted S3: a pack whose read-back failed is taken at the packer's next try, whose own sealing differs", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  const key = await makeEncryptedS3Backup(s, url);
  const logs: string[] = [];
  // Packs of at most three changes: the next try packs the same records under the same name.
  const backend = await S3Backend.connect(url, {
    credentials: s.credentials,
    key,
    policy: { timeoutMs: 5_000, retries: 0, retryDelayMs: 10, backoff: 1 },
    packer: { every: 3, maxBytes: 600 },
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  const { client } = backend;
  const get = client.get.bind(client);
  let cut = 0;
  client.get = (name, ...rest) => {
    // The first read-back of a pack fails: the pack is stored, its changes kept.
    if (name.includes("/pack-") && cut++ === 0) {
      return Promise.reject(new S3Error("Cannot read: connection lost", 0, "", false));
    }
    return get(name, ...rest);
  };
  const first = [
    "CREATE TABLE vars (name TEXT, intval INTEGER)",
    "INSERT INTO vars VALUES ('data_version', 0)",
  ];
  try {
    for (let v = 1; v <= 8; v++) {
      const statements = [
        ...v === 1 ? first : [`INSERT INTO vars VALUES ('n${v}', ${v})`],
        `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${v - 1}`,
      ];
      await backend.append({ version: v, statements });
      await backend.settle();
    }
  } finally {
    backend.close();
  }
  assertEquals(cut > 1, true, "read back again");
  assertEquals(logs.filter((l) => /another writer/.test(l)), []);
  assert(backend.unpacked.length < 5, `packed on: ${backend.unpacked.map((e) => e.seq)}`);
  const scratch = Deno.makeTempDirSync({ prefix: "cln-backup-s3-restored-" });
  try {
    const restored = await restoredS3WithKey(s, url, key, scratch);
    assert(restored.includes("n8"), restored);
  } finally {
    Deno.removeSync(scratch, { recursive: true });
  }
});

/** Whether `passphrase` opens the key.json of the S3 backup at `url` as it stands. */
async function opensS3(s: Rgw, url: string, passphrase: string): Promise<boolean> {
  const { backupId, wrapped } = await fetchWrappedKey(url, s.credentials);
  return await unwrapKey(wrapped!.bytes, "key.json", backupId, wrapped!.keyId, [{ passphrase }])
    .then(() => true, () => false);
}

/** What {@linkcode withRekeyFixture} gives its body. */
interface RekeyFixture {
  s: Rgw;
  url: string;
  /** Files of the backup's passphrase and of a new one. */
  old: string;
  fresh: string;
  /** A rekey of the backup from the one to the other. */
  args: string[];
  /** What the body may stub, as it was. */
  realFetch: typeof fetch;
  put: S3Client["put"];
  /** Puts back `fetch` and `S3Client`'s `put`. */
  unstub: () => void;
}

/**
 * Runs `body` on a new encrypted S3 backup with its passphrase's file and a new one's; what
 * it stubs is put back and the files removed after it.
 */
async function withRekeyFixture(
  name: string,
  body: (fixture: RekeyFixture) => Promise<void>,
): Promise<void> {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket());
  await makeEncryptedS3Backup(s, url);
  const root = Deno.makeTempDirSync({ prefix: `cln-backup-s3-rekey-${name}-` });
  const realFetch = globalThis.fetch;
  const put = S3Client.prototype.put;
  const unstub = () => {
    globalThis.fetch = realFetch;
    S3Client.prototype.put = put;
  };
  try {
    const old = `${root}/old`, fresh = `${root}/new`;
    Deno.writeTextFileSync(old, `${PASSPHRASE}\n`, { mode: 0o600 });
    Deno.writeTextFileSync(fresh, "new passphrase\n", { mode: 0o600 });
    const args = [url, "--passphrase-file", old, "--new-passphrase-file", fresh];
    await body({ s, url, old, fresh, args, realFetch, put, unstub });
  } finally {
    unstub();
    Deno.removeSync(root, { recursive: true });
  }
}

/**
 * Stubs `fetch` so that every PUT with If-Match is answered `status` with the S3 error `body`
 * (the others go to `realFetch`); returns how many were.
 */
function answerIfMatch(realFetch: typeof fetch, status: number, body: string): () => number {
  let answered = 0;
  globalThis.fetch = (input, init) => {
    if (init?.method !== "PUT" || !new Headers(init.headers).has("if-match")) {
      return realFetch(input, init);
    }
    answered++;
    return Promise.resolve(new Response(body, { status }));
  };
  return () => answered;
}

test("encrypted S3: a rekey run while another waits at its prompt: the waiting one is refused, stores nothing, and the secret of the one that finished opens the backup", async () => {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket());
  await makeEncryptedS3Backup(s, url);
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-s3-rekey-race-" });
  try {
    const secret = (name: string, text: string) => {
      Deno.writeTextFileSync(`${root}/${name}`, `${text}\n`, { mode: 0o600 });
      return `${root}/${name}`;
    };
    const old = secret("old", PASSPHRASE);
    const second = secret("second", "second terminal's passphrase");
    const other = new BufferedOutput();
    let otherCode: number | undefined;
    // The first operator is at the new-passphrase prompt (key.json read and opened) when a
    // second rekey runs to its end.
    const prompt = async () => {
      otherCode ??= await rekey(
        [url, "--passphrase-file", old, "--new-passphrase-file", second],
        other,
        () => Promise.resolve(undefined),
      );
      return "first terminal's passphrase";
    };
    const first = new BufferedOutput();
    const code = await rekey([url, "--passphrase-file", old], first, prompt);
    assertEquals(otherCode, 0, other.stderr.join("\n"));
    assertMatch(other.text, /^Rewrapped the key of "s3:\/\/.*" for a new passphrase/);
    assertEquals([code, first.stdout], [1, []], first.text);
    assertEquals(first.stderr.length, 1, first.stderr.join("\n"));
    assertMatch(
      first.stderr[0],
      /^Cannot rekey backup: another rekey replaced ".*\/key\.json" since this one read it: key\.json was not changed by this one; run rekey again with the secret now in force/,
    );
    assert(await opensS3(s, url, "second terminal's passphrase"), "the finished rekey's secret");
    assert(!await opensS3(s, url, "first terminal's passphrase"));
    assert(!await opensS3(s, url, PASSPHRASE));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

test("encrypted S3: a rekey whose key.json PUT landed but whose answer was lost counts it as stored on the retry's 412", async () => {
  await withRekeyFixture("lost", async ({ s, url, args, put, unstub }) => {
    let lost = false;
    S3Client.prototype.put = async function (key, body, options) {
      await put.call(this, key, body, options);
      if (key.endsWith("/key.json") && !lost) {
        lost = true;
        throw new S3Error(`Cannot store "${key}": no answer within 10 s`, undefined, "", true);
      }
    };
    const output = new BufferedOutput();
    const code = await rekey(args, output);
    unstub();
    assertEquals([lost, code], [true, 0], output.text);
    assertMatch(output.text, /^Rewrapped the key of "s3:\/\/.*" for a new passphrase/);
    assert(await opensS3(s, url, "new passphrase"));
  });
});

test("encrypted S3: a service that does not implement If-Match (501 NotImplemented, as Amazon answered before its conditional writes) still rekeys, unconditionally, and says it could not check", async () => {
  await withRekeyFixture("501", async ({ s, url, args, realFetch, unstub }) => {
    // Amazon's answer to a PUT with If-Match before November 2024.
    const refused = answerIfMatch(
      realFetch,
      501,
      "<Error><Code>NotImplemented</Code><Message>A header you provided implies " +
        "functionality that is not implemented</Message><Header>If-Match</Header></Error>",
    );
    const output = new BufferedOutput();
    const code = await rekey(args, output);
    unstub();
    assertEquals([code, refused() > 0], [0, true], output.text);
    assertEquals(output.stdout.length, 2, output.text);
    assertMatch(output.stdout[0], /^Rewrapped the key of "s3:\/\/.*" for a new passphrase/);
    assertMatch(
      output.stdout[1],
      /^Note: the S3 service of "s3:\/\/.*" does not implement If-Match \(a PUT only over the object read\): this rekey could not check that no other rekey replaced key\.json since it read it/,
    );
    assert(await opensS3(s, url, "new passphrase"));
    assert(!await opensS3(s, url, PASSPHRASE));
  });
});

test("encrypted S3: a service that gives key.json no ETag rekeys with a plain PUT and says it could not check", async () => {
  await withRekeyFixture("no-etag", async ({ s, url, args, realFetch, unstub }) => {
    let conditional = 0;
    globalThis.fetch = async (input, init) => {
      if (new Headers(init?.headers).has("if-match")) conditional++;
      const response = await realFetch(input, init);
      if (init?.method !== "GET" || !String(input).includes("key.json")) return response;
      const headers = new Headers(response.headers);
      headers.delete("etag");
      return new Response(response.body, { status: response.status, headers });
    };
    const output = new BufferedOutput();
    const code = await rekey(args, output);
    unstub();
    assertEquals([code, conditional], [0, 0], output.text);
    assertEquals(output.stdout.length, 2, output.text);
    assertMatch(
      output.stdout[1],
      /^Note: the S3 service of "s3:\/\/.*" gave key\.json no ETag \(it was stored with a plain PUT\): this rekey could not check that no other rekey replaced key\.json since it read it/,
    );
    assert(await opensS3(s, url, "new passphrase"));
  });
});

test("encrypted S3: a service that answers 412 to If-Match with either form of the ETag it gave, key.json unchanged, is refused in one line that says what to do, and --no-if-match then rekeys it with a plain PUT and says so", async () => {
  await withRekeyFixture("412", async ({ s, url, args, realFetch }) => {
    // A service (or a proxy before it) that matches If-Match against no ETag it gives.
    const refused = answerIfMatch(
      realFetch,
      412,
      "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions " +
        "you specified did not hold</Message></Error>",
    );
    const output = new BufferedOutput();
    const code = await rekey(args, output);
    assertEquals([code, refused(), output.stdout], [1, 2, []], output.text);
    assertEquals(output.stderr.length, 1, output.text);
    assertMatch(
      output.stderr[0],
      /^Cannot rekey backup: the S3 service of "s3:\/\/.*" refuses If-Match with the ETag it gave for key\.json \(".*", then [0-9a-f]+\), though key\.json is unchanged: .*key\.json is as it was .*: run the same rekey again; refused again, run it with --no-if-match while no other rekey of this backup runs$/,
    );
    assert(await opensS3(s, url, PASSPHRASE), "key.json as it was");
    const unchecked = new BufferedOutput();
    assertEquals(await rekey([...args, "--no-if-match"], unchecked), 0, unchecked.text);
    assertEquals(refused(), 2, "no If-Match sent");
    assertEquals(unchecked.stdout.length, 2, unchecked.text);
    assertMatch(unchecked.stdout[0], /^Rewrapped the key of "s3:\/\/.*" for a new passphrase/);
    assertMatch(
      unchecked.stdout[1],
      /^Note: key\.json of "s3:\/\/.*" was stored with a plain PUT \(--no-if-match\): this rekey could not check that no other rekey replaced key\.json since it read it/,
    );
    assert(await opensS3(s, url, "new passphrase"));
    assert(!await opensS3(s, url, PASSPHRASE));
  });
});

test("encrypted S3: a rekey that gives up after a key.json PUT that landed, its answer lost, says key.json may hold the new wraps and what to do, and the same command run again finishes it", async () => {
  await withRekeyFixture("gave-up", async ({ s, url, args, put, unstub }) => {
    let landed = false, tries = 0;
    // The first PUT that lands has its answer lost; the service is unreachable from then on.
    S3Client.prototype.put = async function (key, body, options) {
      if (!key.endsWith("/key.json")) return await put.call(this, key, body, options);
      tries++;
      if (!landed) {
        await put.call(this, key, body, options);
        landed = true;
      }
      throw new S3Error(`Cannot store "${key}": no answer within 10 s`, undefined, "", true);
    };
    const output = new BufferedOutput();
    const code = await rekey(args, output);
    unstub();
    assertEquals([code, landed, tries > 2, output.stdout], [1, true, true, []], output.text);
    assertEquals(output.stderr.length, 1, output.text);
    assertMatch(
      output.stderr[0],
      /^Cannot store ".*key\.json": no answer within 10 s; storing the wrapped key gave up after \d+ tries.*; a try may have stored it: key\.json may hold the new wraps all the same: keep the new secret, and run the same rekey again, which finishes it or says which secret opens the key now$/,
    );
    const again = new BufferedOutput();
    assertEquals(await rekey(args, again), 0, again.text);
    assertMatch(again.stdout[0], /^Note: the current secret given does not open the key/);
    assert(await opensS3(s, url, "new passphrase"));
    assert(!await opensS3(s, url, PASSPHRASE));
  });
});

test("encrypted S3: a rekey whose plain PUT (If-Match not implemented) is refused says key.json is as it was, not that it may hold the new wraps", async () => {
  await withRekeyFixture("501-403", async ({ s, url, args, realFetch, unstub }) => {
    globalThis.fetch = (input, init) => {
      if (init?.method !== "PUT" || !String(input).includes("key.json")) {
        return realFetch(input, init);
      }
      const conditional = new Headers(init.headers).has("if-match");
      const [code, status] = conditional ? ["NotImplemented", 501] : ["AccessDenied", 403];
      return Promise.resolve(
        new Response(`<Error><Code>${code}</Code><Message>no</Message></Error>`, { status }),
      );
    };
    const output = new BufferedOutput();
    const code = await rekey(args, output);
    unstub();
    assertEquals([code, output.stdout, output.stderr.length], [1, [], 1], output.text);
    assert(!output.stderr[0].includes("may hold the new wraps"), output.stderr[0]);
    assertMatch(
      output.stderr[0],
      /403 AccessDenied.*: key\.json is as it was \(the old secrets open it\)/,
    );
    assert(await opensS3(s, url, PASSPHRASE));
  });
});

test("encrypted S3: a rekey whose key.json PUT never went out (no connection to the service) says key.json is as it was, not that it may hold the new wraps; run again, it rekeys", async () => {
  await withRekeyFixture("unsent", async ({ s, url, args, realFetch, unstub }) => {
    let tries = 0;
    // The service went away after key.json was read: each PUT fails to connect, as fetch says.
    globalThis.fetch = (input, init) => {
      if (init?.method !== "PUT" || !String(input).includes("key.json")) {
        return realFetch(input, init);
      }
      tries++;
      const cause = new Error(
        `error sending request for url (${input}): client error (Connect): tcp connect ` +
          `error: Connection refused (os error 111)`,
      );
      return Promise.reject(new TypeError("fetch failed", { cause }));
    };
    const output = new BufferedOutput();
    const code = await rekey(args, output);
    unstub();
    assertEquals(
      [code, tries > 1, output.stdout, output.stderr.length],
      [1, true, [], 1],
      output.text,
    );
    assert(!output.stderr[0].includes("may hold"), output.stderr[0]);
    assertMatch(
      output.stderr[0],
      /Connection refused.*: key\.json is as it was \(the old secrets open it\)/,
    );
    assert(await opensS3(s, url, PASSPHRASE), "key.json as it was");
    const again = new BufferedOutput();
    assertEquals(await rekey(args, again), 0, again.text);
    assertMatch(again.stdout[0], /^Rewrapped the key of "s3:\/\/.*" for a new passphrase/);
    assert(await opensS3(s, url, "new passphrase"));
    assert(!await opensS3(s, url, PASSPHRASE));
  });
});

test("encrypted S3 without its backup.key: the node stops at its first write, told the whole rekey that writes it", async () => {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket(), "nodes/keyless");
  const dir = makeNodeDir("fresh-start");
  try {
    await makeEncryptedS3Backup(s, url);
    writeLockFile(dir, { backend_url: url });
    writeCredentials(dir, s.credentials);
    const node = FakeLightningd.spawn({ lightningDir: dir, env: { AWS_ACCESS_KEY_ID: "" } });
    await node.getmanifest();
    assertEquals(await node.transaction(["UPDATE vars SET intval = 1 WHERE 0"]), "aborted");
    await node.close();
    const real = Deno.realPathSync(dir);
    assertEquals(
      node.logs.filter((l) => l.level === "broken").map((l) => l.message),
      [
        `Cannot start backup: "${url}" is encrypted and its key file "${real}/backup.key" is ` +
        `missing: put it back, or write it with "cln-backup rekey '${url}' --key-file ` +
        `'${real}'" (it asks for the passphrase or identity)`,
      ],
    );
  } finally {
    removeNodeDir(dir);
  }
});
