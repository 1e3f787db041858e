/**
 * Tampering with an encrypted `s3://` backup, against a real S3 server (Ceph RGW): a bit
 * flipped in a change object, a pack or a base (its checksums made to match), a record moved
 * within a pack, an object copied under another name or from another backup, a plain object
 * among sealed ones and the reverse: each is refused by name in one line, never restored,
 * and nothing is left at the restore's target. A wrong passphrase, a missing key file and
 * another backup's key are refused too.
 */
import { crc32 } from "node:zlib";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { note, SCHEMA } from "./support/plugin_session.ts";
import { bumpStatement } from "./support/statements.ts";
import { type Rgw, writeCredentials } from "./support/rgw.ts";
import { rgwTestInDir } from "./support/shared_rgw.ts";
import { makeEncryptedS3Backup, restoredS3WithKey } from "./support/encrypted_s3.ts";
import { PASSPHRASE } from "./support/encrypted.ts";
import type { Change } from "../lib/backends/backend.ts";
import { S3Backend } from "../lib/backends/s3/backend.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { type ChangeEntry, listBackup } from "../lib/backends/s3/layout.ts";
import { changeKey, type S3Entry, wrappedKeyKey } from "../lib/backends/s3/keys.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import type { DataKey } from "../lib/crypto/data_key.ts";
import { writeKeyFile } from "../lib/crypto/key_file.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { openAtStart } from "../lib/plugin/startup.ts";
import {
  decodeRecordHeader,
  encodeRecord,
  encodeStatements,
  linkRecord,
  RECORD_HEADER_SIZE,
  RecordKind,
} from "../lib/format/record.ts";
import { SEGMENT_HEADER_SIZE } from "../lib/format/segment.ts";
import { restore } from "../lib/cli/restore.ts";
import { BufferedOutput } from "./support/cli_testing.ts";

const FAST = { timeoutMs: 5_000, retries: 2, retryDelayMs: 50, backoff: 2 };
const LAST = 20;

const change = (version: number): Change => ({
  version,
  statements: [note(`n${version}`), bumpStatement(version - 1)],
});

/**
 * A backup of a node at version 1, then changes 2..20 stored (and packed) by the plugin's
 * writer: a base, packs, and change objects after them. Encrypted with `key` (a new one when
 * not given) unless `plain`.
 */
async function backupAt(
  s: Rgw,
  dir: string,
  options: { key?: DataKey; plain?: boolean } = {},
): Promise<{ url: string; key: DataKey | undefined }> {
  const url = s.url(await s.bucket());
  const snapshotPath = `${dir}/snapshot-${crypto.randomUUID()}.sqlite3`;
  const db = new DatabaseSync(snapshotPath);
  db.exec(SCHEMA.join(";"));
  db.exec("UPDATE vars SET intval = 1 WHERE name = 'data_version'");
  db.close();
  const snapshot = { version: 1, path: snapshotPath };
  const key = options.plain
    ? undefined
    : await makeEncryptedS3Backup(s, url, { snapshot, key: options.key, policy: FAST });
  if (options.plain) await createS3Backup(url, s.credentials, snapshot, FAST);
  Deno.removeSync(snapshotPath);
  const backend = await S3Backend.connect(url, {
    credentials: s.credentials,
    policy: FAST,
    packer: { every: 4 },
    key,
  });
  for (let version = 2; version <= LAST; version++) await backend.append(change(version));
  await backend.settle();
  backend.close();
  return { url, key };
}

async function entries(s: Rgw, url: string): Promise<S3Entry[]> {
  return await listBackup(s.client(url));
}

/** Flips a bit in the payload of the record at `offset` of `bytes`, then fixes its CRCs. */
function flipSealed(bytes: Uint8Array, offset: number, at = 30): Uint8Array {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  const length = view.getUint32(offset + 16);
  const payload = offset + RECORD_HEADER_SIZE;
  out[payload + Math.min(at, length - 1)] ^= 0x10;
  view.setUint32(offset + 24, crc32(out.subarray(payload, payload + length)));
  view.setUint32(offset, crc32(out.subarray(offset + 4, offset + RECORD_HEADER_SIZE)));
  return out;
}

/** Why restoring the backup at `url` with `key` is refused (it must be). */
async function refusal(s: Rgw, url: string, key: DataKey | undefined, dir: string) {
  let message = "";
  try {
    const unlock = key && (() => Promise.resolve(key));
    const reader = await S3BackupReader.fetch(url, s.credentials, FAST, undefined, unlock);
    try {
      restoreBackup(reader, `${dir}/refused.sqlite3`);
    } finally {
      reader.close();
    }
  } catch (error) {
    message = (error as Error).message;
  }
  assert(message !== "", "the restore was refused");
  assertEquals(message.split("\n").length, 1, message);
  assert(
    ![...Deno.readDirSync(dir)].some((e) => e.name.startsWith("refused")),
    "no partial restore",
  );
  return message;
}

const test = rgwTestInDir("cln-backup-s3-tamper-", { exportKeys: true });

test(
  "encrypted S3: a bit flipped in a change object, a pack or a base fails authentication; the CLI says so in one line",
  async (s, dir) => {
    const { url, key } = await backupAt(s, dir);
    const client = s.client(url);
    const all = await entries(s, url);
    const base = all.find((e) => e.kind === "base")!;
    const pack = all.find((e) => e.kind === "pack")!;
    const last = all.filter((e) => e.kind === "change").at(-1)!;
    assert(base && pack && last, "a base, a pack and change objects");
    const node = await restoredS3WithKey(s, url, key!, dir);
    const cases: [S3Entry, number][] = [
      [last, 0],
      [pack, SEGMENT_HEADER_SIZE],
      [base, SEGMENT_HEADER_SIZE],
    ];
    for (const [entry, offset] of cases) {
      const original = await client.get(entry.key);
      // Unfixed, the payload's checksum tells damage; fixed, authentication does.
      const damaged = original.slice();
      damaged[offset + RECORD_HEADER_SIZE + 30] ^= 1;
      await client.put(entry.key, damaged);
      assertMatch(await refusal(s, url, key, dir), /checks|checksum mismatch/, entry.key);
      await client.put(entry.key, flipSealed(original, offset));
      const refused = await refusal(s, url, key, dir);
      assertMatch(refused, /a record that fails authentication at offset \d+ of ".*"/, entry.key);
      assert(refused.includes(entry.key), refused);
      if (entry === last) {
        const passphrase = `${dir}/passphrase`;
        Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
        const output = new BufferedOutput();
        const args = [url, `${dir}/cli-refused.sqlite3`, "--passphrase-file", passphrase];
        assertEquals(await restore(args, output), 1);
        assertEquals(output.stderr.length, 1, output.stderr.join("\n"));
        assertMatch(output.stderr[0], /a record that fails authentication/);
        assert(![...Deno.readDirSync(dir)].some((e) => e.name.startsWith("cli-refused")));
      }
      await client.put(entry.key, original);
      assertEquals(await restoredS3WithKey(s, url, key!, dir), node, "put back, it restores");
    }
  },
);

test(
  "encrypted S3: a record moved within a pack, a change object replayed under a newer generation, a base renamed to another sequence: none opens",
  async (s, dir) => {
    const { url, key } = await backupAt(s, dir);
    const client = s.client(url);
    const all = await entries(s, url);
    // Two records of a pack swapped (same lengths: each CRC still checks).
    const pack = all.find((e) => e.kind === "pack")!;
    const original = await client.get(pack.key);
    const view = new DataView(original.buffer);
    const first = SEGMENT_HEADER_SIZE;
    const length = RECORD_HEADER_SIZE + view.getUint32(first + 16);
    assertEquals(view.getUint32(first + length + 16) + RECORD_HEADER_SIZE, length);
    const swapped = original.slice();
    // The versions stay in order: only the payloads trade places, with their CRCs.
    const payloadOf = (at: number) => original.slice(at + 24, at + length);
    swapped.set(payloadOf(first + length).subarray(0, 4), first + 24);
    swapped.set(payloadOf(first + length).subarray(8), first + 32);
    swapped.set(payloadOf(first).subarray(0, 4), first + length + 24);
    swapped.set(payloadOf(first).subarray(8), first + length + 32);
    for (const at of [first, first + length]) {
      new DataView(swapped.buffer).setUint32(at, crc32(swapped.subarray(at + 4, at + 32)));
    }
    await client.put(pack.key, swapped);
    assertMatch(await refusal(s, url, key, dir), /fails authentication at offset 64 of/);
    await client.put(pack.key, original);

    // The newest change object copied to its next generation's name (a replay).
    const last = all.filter((e): e is ChangeEntry => e.kind === "change").at(-1)!;
    const replayed = changeKey(client.url.prefix, last.seq, last.gen + 1, last.version);
    await client.put(replayed, await client.get(last.key));
    assertMatch(await refusal(s, url, key, dir), /fails authentication at offset 0 of ".*0001-/);
    await client.delete(replayed);

    // The newest change object's link rewritten (its header's CRC made to match): it would
    // make a reader take another generation of the record before it.
    const linked = await client.get(last.key);
    const link = decodeRecordHeader(linked)!.link;
    assert(link > 0, "a change object says which generation it was stored on");
    await client.put(last.key, linkRecord(linked.slice(), link + 1));
    assertMatch(await refusal(s, url, key, dir), /fails authentication at offset 0 of ".*change-/);
    await client.put(last.key, linked);

    // The base under the name of another sequence, its header rewritten to match.
    const base = all.find((e) => e.kind === "base")!;
    const bytes = await client.get(base.key);
    const moved = bytes.slice();
    const header = new DataView(moved.buffer);
    header.setBigUint64(40, 3n);
    header.setUint32(60, crc32(moved.subarray(0, 60)));
    const renamed = base.key.replace(/-00000000000000000000\.clnb$/, "-00000000000000000002.clnb");
    assert(renamed !== base.key);
    await client.put(renamed, moved);
    assertMatch(await refusal(s, url, key, dir), /fails authentication at offset 64 of ".*base-/);
  },
);

test(
  "encrypted S3: objects of another backup with the same key, and plain and sealed objects mixed, are refused",
  async (s, dir) => {
    const { url, key } = await backupAt(s, dir);
    const other = await backupAt(s, dir, { key });
    const client = s.client(url);
    const otherClient = s.client(other.url);
    const mine = await entries(s, url);
    const theirs = await entries(s, other.url);
    const node = await restoredS3WithKey(s, url, key!, dir);
    // The same changes, so a change object of the other backup fits a name of this one.
    const last = mine.filter((e) => e.kind === "change").at(-1)!;
    const foreign = theirs.find((e) => e.key.endsWith(last.key.slice(last.key.lastIndexOf("/"))))!;
    const original = await client.get(last.key);
    await client.put(last.key, await otherClient.get(foreign.key));
    assertMatch(await refusal(s, url, key, dir), /fails authentication at offset 0 of/);
    await client.put(last.key, original);
    const pack = mine.find((e) => e.kind === "pack")!;
    const theirPack = theirs.find((e) =>
      e.kind === "pack" && e.key.endsWith(pack.key.slice(pack.key.lastIndexOf("/")))
    )!;
    const ownPack = await client.get(pack.key);
    await client.put(pack.key, await otherClient.get(theirPack.key));
    assertMatch(await refusal(s, url, key, dir), /an object of another backup/);
    await client.put(pack.key, ownPack);
    assertEquals(await restoredS3WithKey(s, url, key!, dir), node);

    // A plain change object after the sealed ones; then a sealed one in a plain backup.
    const version = LAST + 1;
    const plainRecord = encodeRecord(
      RecordKind.Change,
      version,
      encodeStatements(change(version).statements),
    );
    const next = changeKey(
      client.url.prefix,
      last.kind === "change" ? last.seq + 1 : 0,
      0,
      version,
    );
    await client.put(next, plainRecord);
    assertMatch(await refusal(s, url, key, dir), /a plain record in an encrypted backup/);
    const plain = await backupAt(s, dir, { plain: true });
    const plainClient = s.client(plain.url);
    const plainLast = (await entries(s, plain.url)).filter((e) => e.kind === "change").at(-1)!;
    await plainClient.put(plainLast.key, original);
    assertMatch(
      await refusal(s, plain.url, undefined, dir),
      /an encrypted record in a plain segment/,
    );
    // key.json removed: the backup reads as plain, and its sealed objects are refused.
    await client.delete(next);
    await client.delete(wrappedKeyKey(client.url.prefix));
    assertMatch(await refusal(s, url, undefined, dir), /an encrypted (record|object) in a plain/);
  },
);

test(
  "encrypted S3: the plugin refuses a missing key file, another backup's key, and a key beside a plain backup, each in one line",
  async (s, dir) => {
    const { url, key } = await backupAt(s, dir);
    const plain = await backupAt(s, dir, { plain: true });
    const other = await backupAt(s, dir);
    const node = `${dir}/node`;
    Deno.mkdirSync(node);
    writeCredentials(node, s.credentials);
    const startError = async () => {
      const startup = await openAtStart(node);
      assert(!("error" in startup.backend), JSON.stringify(startup.backend));
      const backend = startup.backend as S3Backend;
      try {
        await assertRejects(() => backend.ready());
        const error = await backend.append(change(LAST + 1)).then(() => "", (e) => e.message);
        assertEquals(error.split("\n").length, 1);
        return error;
      } finally {
        backend.close();
      }
    };
    writeLockFile(node, { backend_url: url });
    assertMatch(
      await startError(),
      /is encrypted and no key was given for it: the plugin reads it from backup\.key/,
    );
    writeKeyFile(node, other.key!);
    assertMatch(await startError(), /the key given \(id [0-9a-f]+\) is not the key of "s3:/);
    writeLockFile(node, { backend_url: plain.url });
    assertMatch(await startError(), /is not encrypted, but a key was given for it/);
    // With its own key it opens, and nothing was written meanwhile.
    writeKeyFile(node, key!);
    writeLockFile(node, { backend_url: url });
    const startup = await openAtStart(node);
    const backend = startup.backend as S3Backend;
    await backend.ready();
    assertEquals([backend.state().version, backend.state().encrypted], [LAST, true]);
    backend.close();

    // A wrong passphrase: one line, nothing restored.
    const wrong = `${dir}/bad-passphrase`;
    Deno.writeTextFileSync(wrong, "not the passphrase\n", { mode: 0o600 });
    const output = new BufferedOutput();
    assertEquals(
      await restore([url, `${dir}/wrong.sqlite3`, "--passphrase-file", wrong], output),
      1,
    );
    assertEquals(output.stderr.length, 1, output.stderr.join("\n"));
    assertMatch(
      output.stderr[0],
      /Cannot unlock backup: the passphrase given does not open the backup's key/,
    );
    assert(![...Deno.readDirSync(dir)].some((e) => e.name.startsWith("wrong")));
  },
);
