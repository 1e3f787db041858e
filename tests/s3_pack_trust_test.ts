/**
 * A pack is trusted only once it was read and found to hold the change objects it covers:
 * one whose bytes S3 changed, or one something else stored under a pack's name, never
 * costs the change objects that hold its records (lib/backends/s3/packer.ts).
 *
 * @module
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { type Rgw } from "./support/rgw.ts";
import { connectLogged } from "./support/s3_backup.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { readBackupId, S3Backend } from "../lib/backends/s3/backend.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";
import { S3Client } from "../lib/backends/s3/client.ts";
import { packKey } from "../lib/backends/s3/keys.ts";
import { compactS3 } from "../lib/backends/s3/compaction.ts";
import { concat } from "../lib/bytes/concat.ts";
import { encodeRecord, encodeStatements, RecordKind } from "../lib/format/record.ts";
import { encodeSegmentHeader, SegmentKind } from "../lib/format/segment.ts";
import type { DataKey } from "../lib/crypto/data_key.ts";
import { makeEncryptedS3Backup } from "./support/encrypted_s3.ts";

const FAST = { timeoutMs: 5_000, retries: 2, retryDelayMs: 50, backoff: 2 };

function statements(v: number): string[] {
  const bump = `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${
    v - 1
  }`;
  return v === 1
    ? [
      "CREATE TABLE vars (name TEXT, intval INTEGER)",
      "INSERT INTO vars VALUES ('data_version', 0)",
      bump,
    ]
    : [`INSERT INTO vars VALUES ('n${v}', ${v})`, bump];
}

async function append(backend: S3Backend, v: number): Promise<void> {
  await backend.append({ version: v, statements: statements(v) });
  await backend.settle();
}

/** The versions a restore of `url` replays, in order. */
async function restoredVersions(s: Rgw, url: string, key?: DataKey): Promise<number[]> {
  const unlock = key && (() => Promise.resolve(key));
  const reader = await S3BackupReader.fetch(url, s.credentials, FAST, undefined, unlock);
  try {
    return [...reader.entries()].filter((e) => e.kind === "change").map((e) =>
      (e as { version: number }).version
    );
  } finally {
    reader.close();
  }
}

const upTo = (last: number) => Array.from({ length: last }, (_, i) => i + 1);

/** The client's next pack stores one byte other than sent: S3 damaged it on the way in. */
function damageNextPack(client: S3Client): Promise<string> {
  const put = client.put.bind(client);
  return new Promise((stored) => {
    client.put = async (key, body, options) => {
      if (!key.includes("/pack-")) return await put(key, body, options);
      client.put = put;
      const damaged = body.slice();
      damaged[damaged.length - 1] ^= 1;
      await put(key, damaged, options);
      stored(key);
    };
  });
}

rgwTest(
  "S3 packs: one S3 stored other bytes of is deleted, and a restore reads its change objects",
  async () => {
    const s = sharedRgw();
    const url = s.url(await s.bucket());
    await createS3Backup(url, s.credentials, undefined, FAST);
    const options = { credentials: s.credentials, policy: FAST, packer: { every: 4 } };
    const { backend, logs } = await connectLogged(url, options);
    const damaged = damageNextPack(backend.client);
    for (let v = 1; v <= 5; v++) await append(backend, v);
    const key = await damaged;
    assertMatch(logs.join("\n"), /reads back other bytes than were sent; keeping the changes/);
    assertEquals(backend.failure, undefined);
    backend.close();
    const left = await listBackup(s.client(url));
    assertEquals(left.filter((e) => e.key === key), []);
    assertEquals(left.filter((e) => e.kind === "change").map((e) => e.key).length, 5);
    assertEquals(await restoredVersions(s, url), upTo(5));
  },
);

for (
  const what of ["a pack whose bytes S3 changed", "an object named like a pack, of other records"]
) {
  rgwTest(
    `S3 packs: ${what}, met by a restore or the writer's start, is named and its change objects kept`,
    async () => {
      const s = sharedRgw();
      const url = s.url(await s.bucket());
      await createS3Backup(url, s.credentials, undefined, FAST);
      const options = { credentials: s.credentials, policy: FAST, packer: { every: 1000 } };
      const writer = await S3Backend.connect(url, options);
      for (let v = 1; v <= 5; v++) await append(writer, v);
      writer.close();
      // Left by a packer that stopped before its read-back, or by something else.
      const client = s.client(url);
      const backupId = await readBackupId(client, url);
      const changes = (await listBackup(client)).filter((e) => e.kind === "change");
      const records = what.startsWith("a pack")
        ? await Promise.all(changes.slice(0, 4).map((c) => client.get(c.key)))
        : upTo(4).map((v) =>
          encodeRecord(RecordKind.Change, v, encodeStatements([`SELECT 'not ${v}'`]))
        );
      const header = encodeSegmentHeader({
        kind: SegmentKind.Log,
        number: 1,
        backupId,
        firstLog: 0,
      });
      const pack = concat([header, ...records]);
      if (what.startsWith("a pack")) pack[pack.length - 1] ^= 1;
      const key = packKey(client.url.prefix, 1, 4, 4);
      await client.put(key, pack);
      const refused = await assertRejects(() => restoredVersions(s, url));
      assertEquals(
        refused.message,
        `Cannot read backup: the pack "${key}" does not hold the change objects of its records ` +
          `beside it (S3 changed its bytes, or something else stored it): delete that pack ` +
          `(they hold its records), then read the backup again`,
      );
      const { backend, logs } = await connectLogged(url, { ...options, packer: { every: 4 } });
      for (let v = 6; v <= 9; v++) await append(backend, v);
      assertEquals(
        backend.failure,
        `the backup in ${backend.destination} is damaged: the pack "${key}" does not hold the ` +
          `change objects it names (S3 changed its bytes, or something else stored it); they are ` +
          `kept: delete that pack (they hold its records), then start the node again`,
      );
      assertEquals(logs.filter((l) => l.startsWith("broken: ")), [`broken: ${backend.failure}`]);
      await assertRejects(() => append(backend, 10));
      backend.close();
      const left = new Set((await listBackup(client)).map((e) => e.key));
      assert(changes.slice(0, 4).every((c) => left.has(c.key)), "the change objects are kept");
      await client.delete(key);
      assertEquals(await restoredVersions(s, url), upTo(9));
    },
  );
}

for (const encrypted of [false, true]) {
  rgwTest(
    `S3 packs: ${
      encrypted ? "an encrypted" : "a"
    } pack whose change objects a writer left is checked at the next start, then they go`,
    async () => {
      const s = sharedRgw();
      const url = s.url(await s.bucket());
      const key = encrypted ? await makeEncryptedS3Backup(s, url, { policy: FAST }) : undefined;
      if (!encrypted) await createS3Backup(url, s.credentials, undefined, FAST);
      const options = { credentials: s.credentials, policy: FAST, packer: { every: 4 }, key };
      const writer = await S3Backend.connect(url, options);
      // Its deletes fail, as a writer stopped after its read-back leaves them.
      writer.client.delete = () => Promise.reject(new Error("stopped"));
      for (let v = 1; v <= 5; v++) await append(writer, v);
      writer.close();
      const client = s.client(url);
      const before = await listBackup(client);
      assertEquals(before.filter((e) => e.kind === "pack").length, 1);
      const { backend } = await connectLogged(url, options);
      for (let v = 6; v <= 9; v++) await append(backend, v);
      assertEquals(backend.failure, undefined);
      backend.close();
      const left = new Set((await listBackup(client)).map((e) => e.key));
      const changes = before.filter((e) => e.kind === "change" && e.seq <= 4);
      assertEquals(changes.filter((c) => left.has(c.key)), []);
      assertEquals(await restoredVersions(s, url, key), upTo(9));
    },
  );
}

rgwTest(
  "S3 packs: a compaction beside the packer leaves the change objects of a pack not read back yet",
  async () => {
    const s = sharedRgw();
    const url = s.url(await s.bucket());
    await createS3Backup(url, s.credentials, undefined, FAST);
    const options = { credentials: s.credentials, policy: FAST, packer: { every: 4 } };
    const { backend } = await connectLogged(url, options);
    for (let v = 1; v <= 10; v++) await append(backend, v);
    // `compact` from the CLI, held once its base is uploaded, before it lists again.
    const complete = S3Client.prototype.completeMultipart;
    let uploaded!: () => void;
    const baseUploaded = new Promise<void>((resolve) => uploaded = resolve);
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    S3Client.prototype.completeMultipart = async function (this: S3Client, ...args) {
      await complete.apply(this, args);
      uploaded();
      await released;
    };
    let compaction;
    try {
      compaction = compactS3(url, s.credentials, { policy: FAST });
      await baseUploaded;
    } finally {
      S3Client.prototype.completeMultipart = complete;
    }
    // Meanwhile the packer stores a pack S3 damages, and reads it back only after the
    // compaction listed it.
    const get = backend.client.get.bind(backend.client);
    let readBack!: () => void;
    const mayReadBack = new Promise<void>((resolve) => readBack = resolve);
    backend.client.get = async (key, ...rest) => {
      if (key.includes("/pack-")) await mayReadBack;
      return await get(key, ...rest);
    };
    const damaged = damageNextPack(backend.client);
    for (let v = 11; v <= 13; v++) await backend.append({ version: v, statements: statements(v) });
    await damaged;
    release();
    const result = await compaction;
    assertEquals(result.base_version, 9);
    readBack();
    await backend.settle();
    backend.client.get = get;
    assertEquals(backend.failure, undefined);
    for (let v = 14; v <= 15; v++) await append(backend, v);
    backend.close();
    assertEquals(await restoredVersions(s, url), upTo(15).filter((v) => v > 9));
  },
);

for (const encrypted of [false, true]) {
  rgwTest(
    `S3 packs: ${
      encrypted ? "an encrypted" : "a"
    } pack beside a generation it does not hold (a copy's rewound change) is taken, not damage`,
    async () => {
      const s = sharedRgw();
      const url = s.url(await s.bucket());
      const key = encrypted ? await makeEncryptedS3Backup(s, url, { policy: FAST }) : undefined;
      if (!encrypted) await createS3Backup(url, s.credentials, undefined, FAST);
      const options = { credentials: s.credentials, policy: FAST, key };
      const node = await S3Backend.connect(url, { ...options, packer: { every: 1 } });
      for (let v = 1; v <= 5; v++) await append(node, v);
      // A copy of the node one change behind stores its own change 5 on generation 1, then
      // the node's change 6, stored on its generation 0, refuses the copy's next one.
      const copy = await S3Backend.connect(url, { ...options, packer: { every: 1000 } });
      await copy.rewind();
      await copy.append({ version: 5, statements: [`INSERT INTO vars VALUES ('copy5', 5)`] });
      copy.close();
      // The node packs record 5 and deletes its change object; the copy's stays.
      await append(node, 6);
      node.close();
      const client = s.client(url);
      const left = (await listBackup(client)).filter((e) => e.kind === "change" && e.seq === 5);
      assertEquals(left.map((e) => e.kind === "change" && e.gen), [1]);
      assertEquals(await restoredVersions(s, url, key), upTo(6));
      const { backend } = await connectLogged(url, { ...options, packer: { every: 4 } });
      for (let v = 7; v <= 10; v++) await append(backend, v);
      assertEquals(backend.failure, undefined);
      backend.close();
      const copy5 = (await listBackup(client)).filter((e) => e.kind === "change" && e.seq === 5);
      assertEquals(copy5, [], "the copy's change 5 is garbage");
      assertEquals(await restoredVersions(s, url, key), upTo(10));
    },
  );
}
