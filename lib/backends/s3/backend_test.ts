import { assert, assertEquals, assertMatch, assertRejects } from "../../../tests/support/assert.ts";
import { type Rgw } from "../../../tests/support/rgw.ts";
import { connectLogged } from "../../../tests/support/s3_backup.ts";
import { rgwTest, sharedRgw } from "../../../tests/support/shared_rgw.ts";
import { S3Backend } from "./backend.ts";
import { S3BackupReader } from "./reader.ts";
import { createS3Backup } from "./create.ts";
import { listBackup } from "./layout.ts";
import type { BackupEntry } from "../backend.ts";
import { S3Client, type S3Object } from "./client.ts";
import { compactS3 } from "./compaction.ts";

const FAST = { timeoutMs: 5_000, retries: 2, retryDelayMs: 50, backoff: 2 };

function changes(entries: Iterable<BackupEntry>): [number, string[]][] {
  return [...entries].filter((e) => e.kind === "change").map((e) => {
    const change = e as Extract<BackupEntry, { kind: "change" }>;
    return [change.version, change.statements];
  });
}

async function restoredChanges(s: Rgw, url: string): Promise<[number, string[]][]> {
  const reader = await S3BackupReader.fetch(url, s.credentials, FAST);
  try {
    return changes(reader.entries());
  } finally {
    reader.close();
  }
}

const test = rgwTest;

test("S3: changes go one object each; a reopened writer knows where the backup stands", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  await createS3Backup(url, s.credentials, undefined, FAST);
  const backend = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
  for (let v = 1; v <= 4; v++) await backend.append({ version: v, statements: [`S${v}`] });
  // A hook without a bump repeats the version.
  await backend.append({ version: 4, statements: ["PRAGMA foreign_keys = ON"] });
  backend.close();
  const reopened = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
  const state = reopened.state();
  assertEquals([state.version, state.rewindVersion, state.records], [4, 4, 5]);
  await reopened.append({ version: 5, statements: ["S5"] });
  reopened.close();
  assertEquals((await listBackup(s.client(url))).length, 6);
  assertEquals(await restoredChanges(s, url), [
    [1, ["S1"]],
    [2, ["S2"]],
    [3, ["S3"]],
    [4, ["S4"]],
    [4, ["PRAGMA foreign_keys = ON"]],
    [5, ["S5"]],
  ]);
});

test("S3: a rewind is superseded by the next change's next generation", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  await createS3Backup(url, s.credentials, undefined, FAST);
  const backend = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
  for (let v = 1; v <= 3; v++) await backend.append({ version: v, statements: [`S${v}`] });
  backend.close();
  const writer = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
  assertEquals(writer.state().rewindVersion, 2);
  await writer.rewind();
  assertEquals([writer.state().version, writer.state().rewindVersion], [2, undefined]);
  await writer.append({ version: 3, statements: ["other 3"] });
  await writer.append({ version: 4, statements: ["S4"] });
  writer.close();
  assertEquals(await restoredChanges(s, url), [
    [1, ["S1"]],
    [2, ["S2"]],
    [3, ["other 3"]],
    [4, ["S4"]],
  ]);
  const reopened = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
  assertEquals([reopened.state().version, reopened.state().rewindVersion], [4, 3]);
  reopened.close();
});

test("S3: the packer merges old change objects into packs, and restore reads them", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  await createS3Backup(url, s.credentials, undefined, FAST);
  const backend = await S3Backend.connect(url, {
    credentials: s.credentials,
    policy: FAST,
    packer: { every: 4 },
  });
  const expected: [number, string[]][] = [];
  for (let v = 1; v <= 20; v++) {
    await backend.append({ version: v, statements: [`S${v}`, "x".repeat(v * 10)] });
    expected.push([v, [`S${v}`, "x".repeat(v * 10)]]);
    await backend.settle();
  }
  backend.close();
  const entries = await listBackup(s.client(url));
  const packs = entries.filter((e) => e.kind === "pack");
  const loose = entries.filter((e) => e.kind === "change");
  assert(packs.length >= 3, `packs: ${packs.map((p) => p.key)}`);
  assert(loose.length <= 5, `change objects left: ${loose.length}`);
  assertEquals(await restoredChanges(s, url), expected);
  const reopened = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
  assertEquals([reopened.state().version, reopened.state().rewindVersion], [20, 19]);
  reopened.close();
});

test("S3: a second writer on the same prefix is refused by the conditional PUT", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  await createS3Backup(url, s.credentials, undefined, FAST);
  const first = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
  const second = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
  await first.append({ version: 1, statements: ["first"] });
  const error = await assertRejects(() => second.append({ version: 1, statements: ["second"] }));
  assertMatch(error.message, /exists with other contents .*another writer uses this backup/);
  // Once refused, it refuses every later change.
  await assertRejects(() => second.append({ version: 2, statements: ["x"] }));
  first.close();
  second.close();
  assertEquals(await restoredChanges(s, url), [[1, ["first"]]]);
});

for (const goesOn of ["the node", "its copy"] as const) {
  test(`S3: a copy of a node one change behind on its prefix: a restore follows ${goesOn}, never a mix`, async () => {
    const s = sharedRgw();
    const url = s.url(await s.bucket());
    await createS3Backup(url, s.credentials, undefined, FAST);
    // No packing while both write: a pack would settle which generation is read.
    const options = { credentials: s.credentials, policy: FAST, packer: { every: 1000 } };
    const node = await S3Backend.connect(url, options);
    for (let v = 1; v <= 3; v++) await node.append({ version: v, statements: [`S${v}`] });
    // The copy's database is at version 2: the newest change looks like one its node never
    // committed, so it drops it and stores its own version 3, as after a crash.
    const copy = await S3Backend.connect(url, options);
    await copy.rewind();
    await copy.append({ version: 3, statements: ["copy 3"] });
    const [first, second] = goesOn === "the node" ? [node, copy] : [copy, node];
    const history = goesOn === "the node" ? "S" : "copy ";
    await first.append({ version: 4, statements: [`${history}4`] });
    const refused = await assertRejects(() => second.append({ version: 4, statements: ["x"] }));
    assertMatch(refused.message, /another writer uses this backup/);
    for (let v = 5; v <= 8; v++) await first.append({ version: v, statements: [`${history}${v}`] });
    node.close();
    copy.close();
    const expected: [number, string[]][] = [[1, ["S1"]], [2, ["S2"]]];
    for (let v = 3; v <= 8; v++) expected.push([v, [`${history}${v}`]]);
    assertEquals(await restoredChanges(s, url), expected);
    // The next start's packer packs the history and deletes the generation it does not follow.
    const reopened = await S3Backend.connect(url, { ...options, packer: { every: 2 } });
    await reopened.append({ version: 9, statements: [`${history}9`] });
    await reopened.settle();
    reopened.close();
    assertEquals(await restoredChanges(s, url), [...expected, [9, [`${history}9`]]]);
    const left = await listBackup(s.client(url));
    assert(left.some((e) => e.kind === "pack"), "packed");
    const changes = left.filter((e) => e.kind === "change");
    assertEquals(new Set(changes.map((e) => e.seq)).size, changes.length, "one generation each");
  });
}

test("S3: no backup at the URL, a missing bucket, wrong keys: one line each", async () => {
  const s = sharedRgw();
  const bucket = await s.bucket();
  const none = await assertRejects(() =>
    S3Backend.connect(s.url(bucket, "nothing"), { credentials: s.credentials, policy: FAST })
  );
  assertMatch(
    none.message,
    /^Cannot open backup: no backup at ".*" \(no nothing\/backup-id in .*\): check the URL's bucket, prefix and endpoint; "cln-backup init" is for a node without a backup$/,
  );
  const missing = await assertRejects(() =>
    S3Backend.connect(s.url("no-such-bucket"), { credentials: s.credentials, policy: FAST })
  );
  assertMatch(missing.message, /404 NoSuchBucket .*the bucket does not exist: create it/);
  const wrong = { ...s.credentials, secretAccessKey: "wrong" };
  const denied = await assertRejects(() =>
    S3Backend.connect(s.url(bucket), { credentials: wrong, policy: FAST })
  );
  assertMatch(denied.message, /403 SignatureDoesNotMatch .*check the keys/);
});

/** A backup of 30 changes, packed every 4, and the writer's log. */
async function filled(s: Rgw, url: string) {
  await createS3Backup(url, s.credentials, undefined, FAST);
  const { backend, logs } = await connectLogged(url, {
    credentials: s.credentials,
    policy: FAST,
    packer: { every: 4 },
  });
  for (let v = 1; v <= 30; v++) await append(backend, v);
  return { backend, logs };
}

async function append(backend: S3Backend, v: number): Promise<void> {
  const bump = `UPDATE vars SET intval = intval + 1 WHERE name = 'data_version' AND intval = ${
    v - 1
  }`;
  await backend.append({
    version: v,
    statements: v === 1
      ? [
        "CREATE TABLE vars (name TEXT, intval INTEGER)",
        "INSERT INTO vars VALUES ('data_version', 0)",
        bump,
      ]
      : [`INSERT INTO vars VALUES ('n${v}', ${v})`, bump],
  });
  await backend.settle();
}

/** Every listing of `backend` made by `list` until the returned restore. */
function listing(backend: S3Backend, list: (all: S3Object[]) => S3Object[][]): () => void {
  const client = backend.client;
  const original = client.list.bind(client);
  client.list = async function* (prefix: string) {
    const all: S3Object[] = [];
    for await (const page of original(prefix)) all.push(...page);
    yield* list(all);
  } as typeof client.list;
  return () => client.list = original;
}

test("S3: a listing that leaves objects out (a compaction between its pages) is listed again, not believed", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  const { backend, logs } = await filled(s, url);
  const before: S3Object[] = [];
  for await (const page of backend.client.list(backend.client.url.prefix)) before.push(...page);
  // `cln-backup compact` runs elsewhere: page 1 was served before it, page 2 after it.
  await compactS3(url, s.credentials, { policy: FAST });
  let listings = 0;
  const restore = listing(backend, (after) => {
    if (listings++ > 0) return [after];
    const page1 = before.slice(0, 3);
    return [page1, after.filter((o) => o.key > page1.at(-1)!.key)];
  });
  await backend.resync();
  restore();
  assertEquals(backend.failure, undefined);
  assertEquals(listings, 2);
  assertMatch(logs.join("\n"), /^info: the backup's listing lacks objects, to list again: /m);
  await append(backend, 31);
  backend.close();
  assertEquals((await restoredChanges(s, url)).at(-1)?.[0], 31);
});

test("S3: objects missing from three listings in a row stop the backup; changes go on meanwhile", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  const { backend, logs } = await filled(s, url);
  let listings = 0;
  const restore = listing(backend, (all) => {
    listings++;
    return [all.filter((o) => !/\/pack-0*1-/.test(o.key))];
  });
  const checking = backend.resync();
  await append(backend, 31);
  await checking;
  restore();
  assertEquals(listings, 3);
  assertMatch(backend.failure ?? "", /lost objects: no object holds record 1, which comes before/);
  assertEquals(logs.filter((l) => l.startsWith("broken: ")), [`broken: ${backend.failure}`]);
  assertEquals((await assertRejects(() => append(backend, 32))).message, backend.failure);
  backend.close();
});

test("S3: an object named like the backup's but not one is named, and neither writer nor reader stops", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  const { backend, logs } = await filled(s, url);
  const stray = `${backend.client.url.prefix}pack-notes.txt`;
  await backend.client.put(stray, new Uint8Array(1));
  await backend.resync();
  assertEquals(backend.failure, undefined);
  assertEquals(logs.filter((l) => l.includes("not the backup's")), [
    `unusual: the prefix holds an object that is not the backup's ("${stray}" in ` +
    `${backend.destination}), left alone: remove it`,
  ]);
  backend.close();
  const reader = await S3BackupReader.fetch(url, s.credentials, FAST);
  try {
    assertEquals(reader.describe().strays, [stray]);
    assertEquals(changes(reader.entries()).length, 30);
  } finally {
    reader.close();
  }
});

test("S3: a reader whose listing leaves objects out (a compaction between its pages) lists again, not calls the backup damaged", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  const { backend } = await filled(s, url);
  backend.close();
  const before: S3Object[] = [];
  for await (const page of backend.client.list(backend.client.url.prefix)) before.push(...page);
  // `status` or `restore` lists while a compaction runs: page 1 before it, page 2 after it.
  await compactS3(url, s.credentials, { policy: FAST });
  const original = S3Client.prototype.list;
  let listings = 0;
  S3Client.prototype.list = async function* (this: S3Client, prefix: string) {
    const after: S3Object[] = [];
    for await (const page of original.call(this, prefix)) after.push(...page);
    if (listings++ > 0) {
      yield after;
      return;
    }
    const page1 = before.slice(0, 3);
    yield* [page1, after.filter((o) => o.key > page1.at(-1)!.key)];
  } as typeof original;
  try {
    assertEquals((await restoredChanges(s, url)).at(-1)?.[0], 30);
  } finally {
    S3Client.prototype.list = original;
  }
  assertEquals(listings, 2);
});

test("S3: a change object whose bytes S3 changed, met by the packer, stops the backup, not packing alone", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  await createS3Backup(url, s.credentials, undefined, FAST);
  const { backend, logs } = await connectLogged(url, {
    credentials: s.credentials,
    policy: FAST,
    packer: { every: 4 },
  });
  for (let v = 1; v <= 3; v++) await append(backend, v);
  // Bit rot, or another tool writing over it: the record no longer passes its checks.
  const damaged = backend.unpacked[1];
  const bytes = await backend.client.get(damaged.key);
  bytes[bytes.length - 1] ^= 1;
  await backend.client.put(damaged.key, bytes);
  // The fifth change object makes a pack due.
  for (let v = 4; v <= 5; v++) await append(backend, v);
  assertMatch(
    backend.failure ?? "",
    /^the backup in .* is damaged: the change object ".*" fails its checks: no restore reads past it: init a new backup on a new prefix \(the node's database is intact\)$/,
  );
  assertEquals(logs.filter((l) => l.startsWith("broken: ")), [`broken: ${backend.failure}`]);
  assertEquals((await assertRejects(() => append(backend, 6))).message, backend.failure);
  backend.close();
});
