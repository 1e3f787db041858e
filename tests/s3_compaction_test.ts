/**
 * Compaction of an S3 backup against a real S3 server (Ceph's RGW): folded into a new base
 * that restores equal to the node, the newest change kept on top for a rewind, and crashes
 * between the steps leaving a backup that restores and a next compaction that finishes.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { note, SCHEMA, status, unusual } from "./support/plugin_session.ts";
import { restoredFromS3, type Rgw } from "./support/rgw.ts";
import {
  connectLogged,
  runCompact,
  s3BackupAtVersion1,
  withInitS3Node,
} from "./support/s3_backup.ts";
import { rgwTestInDir } from "./support/shared_rgw.ts";
import { FakeLightningd, throughLauncher } from "./support/fake_lightningd.ts";
import { bumpStatement } from "./support/statements.ts";
import type { Change } from "../lib/backends/backend.ts";
import { compactS3 } from "../lib/backends/s3/compaction.ts";
import { SCRATCH_DIR } from "../lib/backends/plugin_scratch.ts";
import { S3Compaction } from "../lib/backends/s3/compaction_service.ts";
import { DEFAULT_POLICY } from "../lib/compact/policy.ts";
import { S3Backend } from "../lib/backends/s3/backend.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { checkBackup } from "../lib/cli/verify.ts";

const FAST = { timeoutMs: 5_000, retries: 2, retryDelayMs: 50, backoff: 2 };

const change = (version: number, text = `n${version}`): Change => ({
  version,
  statements: [note(text), bumpStatement(version - 1)],
});

/** A node's database at version 1, then with `changes` applied, as its dump. */
function nodeDump(dir: string, changes: Change[]): string {
  const path = `${dir}/node-${crypto.randomUUID()}.sqlite3`;
  const db = new DatabaseSync(path);
  db.exec(SCHEMA.join(";"));
  db.exec("UPDATE vars SET intval = 1 WHERE name = 'data_version'");
  for (const c of changes) for (const s of c.statements) db.exec(s);
  db.close();
  return dumpDatabase(path);
}

/** A backup of the node at version 1, then `changes` stored by the plugin's writer. */
async function newBackup(s: Rgw, dir: string, changes: Change[]): Promise<string> {
  const url = await s3BackupAtVersion1(s, dir, FAST);
  await append(s, url, changes);
  return url;
}

async function append(s: Rgw, url: string, changes: Change[]): Promise<S3Backend> {
  const backend = await S3Backend.connect(url, {
    credentials: s.credentials,
    policy: FAST,
    packer: { every: 4 },
  });
  for (const c of changes) await backend.append(c);
  await backend.settle();
  backend.close();
  return backend;
}

/** The names of the backup's objects, by kind: base and pack names, and change versions. */
async function objects(s: Rgw, url: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const entry of await listBackup(s.client(url))) {
    counts[entry.kind] = (counts[entry.kind] ?? 0) + 1;
  }
  return counts;
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => change(from + i));

const test = rgwTestInDir("cln-backup-s3-compact-");

test(
  "S3 compaction: all but the newest change folded into a base; restore equal; a rewind still works",
  async (s, dir) => {
    const changes = range(2, 30);
    const url = await newBackup(s, dir, changes);
    assert((await objects(s, url)).pack! > 0, "the packer made packs");
    const result = await compactS3(url, s.credentials, { policy: FAST });
    assertEquals(result.base_version, 29);
    assertEquals(result.versions_folded, 28);
    assert(result.bytes_freed > 0 && result.after.backupsize < result.before.backupsize);
    // As the Python plugin counts: the 29 changes and the first snapshot; then the new
    // base and the newest change.
    assertEquals([result.before.version_count, result.after.version_count], [29 + 1, 1 + 1]);
    // The new base, the newest change on top of it, and the backup's id: nothing else.
    assertEquals(await objects(s, url), { base: 1, change: 1 });
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, changes));

    // The writer still sees the newest change on its own, so the node can drop it.
    const backend = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
    assertEquals([backend.state().version, backend.state().rewindVersion], [30, 29]);
    await backend.rewind();
    const other = change(30, "other");
    await backend.append(other);
    backend.close();
    const now = [...changes.slice(0, -1), other];
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, now));

    // Only the newest change after the base: nothing to fold. The rewound change's object
    // stays until a change links past the newest record (a second writer's rewind may have
    // stored the generation read, and the node's next change link to the other).
    const idle = await compactS3(url, s.credentials, { policy: FAST });
    assertEquals([idle.base_version, idle.versions_folded], [null, 0]);
    assertEquals(idle.bytes_freed, 0, "no generation of the newest record is deleted");
    assertEquals(await objects(s, url), { base: 1, change: 2 });
    await append(s, url, [change(31)]);
    assertEquals((await compactS3(url, s.credentials, { policy: FAST })).base_version, 30);
    assertEquals(await objects(s, url), { base: 1, change: 1 });
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, [...now, change(31)]));
  },
);

test(
  "S3 compaction: a crash after the upload or mid-delete leaves a backup that restores; the next one finishes",
  async (s, dir) => {
    const changes = range(2, 20);
    const url = await newBackup(s, dir, changes);
    const crash = (at: string, after = 1) => ({
      policy: FAST,
      crashAt: (step: string) => {
        if (step === at && --after === 0) throw new Error(`crash at ${step}`);
      },
    });
    await assertRejects(
      () => compactS3(url, s.credentials, crash("base-uploaded")),
      /crash at base-uploaded/,
    );
    assertEquals((await objects(s, url)).base, 2, "the new base beside the old one");
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, changes));
    // The writer opens, and goes on; a crash after the first delete.
    await append(s, url, range(21, 25));
    const all = range(2, 25);
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, all));
    await assertRejects(
      () => compactS3(url, s.credentials, crash("deleted-one", 2)),
      /crash at deleted-one/,
    );
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, all));
    // A compaction killed mid-upload left parts, which S3 keeps until they are aborted.
    const client = s.client(url);
    const left = `${client.url.prefix}base-00000000000000000099-00000000000000000099.clnb`;
    const uploadId = await client.createMultipart(left);
    await client.uploadPart(left, uploadId, 1, new Uint8Array(1024));
    const unfinished = async () => {
      const uploads = [];
      for await (const page of client.listMultipart(client.url.prefix)) uploads.push(...page);
      return uploads.map((u) => u.key);
    };
    assertEquals(await unfinished(), [left]);
    // The base at 24 was uploaded: nothing is left to fold, but what it covers goes.
    const done = await compactS3(url, s.credentials, { policy: FAST });
    assertEquals(await unfinished(), [], "the unfinished upload aborted");
    assertEquals(done.base_version, null);
    assert(done.bytes_freed > 0, "the leftovers were deleted");
    assertEquals(await objects(s, url), { base: 1, change: 1 });
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, all));
  },
);

test(
  "S3 compaction: verify of the two bases a crash after the upload leaves says OK, as restore does",
  async (s, dir) => {
    const url = await newBackup(s, dir, range(2, 12));
    await assertRejects(
      () =>
        compactS3(url, s.credentials, {
          policy: FAST,
          crashAt: (step) => {
            if (step === "base-uploaded") throw new Error("crash");
          },
        }),
      /crash/,
    );
    assertEquals((await objects(s, url)).base, 2, "the new base beside the old one");
    const reader = await S3BackupReader.fetch(url, s.credentials);
    try {
      Deno.mkdirSync(`${dir}/verify`);
      // The old base is garbage (the new one covers it): read, it would fail as not kept.
      assertEquals(checkBackup(reader, `${dir}/verify`), [
        `OK: "${url}" holds versions 11 to 12 in 3 records (snapshots at 11); every record ` +
        `reads, and it restores to version 12 passing SQLite's integrity check`,
      ]);
    } finally {
      reader.close();
    }
  },
);

test(
  "S3 compaction: `compact s3://...` prints the result; --retain above 1 is refused",
  async (s, dir) => {
    const url = await newBackup(s, dir, range(2, 12));
    const run = (...args: string[]) => runCompact(s, ...args);
    const refused = await run(url, "--retain", "2");
    assertEquals(refused.code, 2);
    assertMatch(refused.stderr, /an S3 backup keeps one base.*leave --retain out/);
    const done = await run(url, "--json");
    assertEquals(done.code, 0, done.stderr);
    const result = JSON.parse(done.stdout);
    assertEquals([result.base_version, result.versions_folded], [11, 10]);
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, range(2, 12)));
  },
);

test(
  "S3 compaction: by itself once the objects after the base outgrow it as the policy says",
  async (s, dir) => {
    const url = await newBackup(s, dir, range(2, 40));
    const backend = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
    try {
      const { baseBytes, sealedLogBytes } = backend.compactionSizes();
      assert(baseBytes > 0 && sealedLogBytes > 0, JSON.stringify(backend.compactionSizes()));
      // Due once the objects after the base reach the floor in bytes: not yet.
      const policy = { auto: true, ratioPercent: 100, minBytes: sealedLogBytes + 1, retain: 1 };
      const service = new S3Compaction(backend, () => policy, `${dir}/scratch`);
      assertEquals(service.status().next_due_at_bytes, sealedLogBytes + 1);
      assertEquals(service.maybeCompact(), undefined);
      policy.minBytes = sealedLogBytes;
      const result = await service.maybeCompact();
      assertEquals(result?.base_version, 39);
      assertEquals(service.status().last?.ok, true);
      assert(backend.compactionSizes().sealedLogBytes < sealedLogBytes, "counted anew");
      await backend.append(change(41));
    } finally {
      backend.close();
    }
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, range(2, 41)));
  },
);

test(
  "S3 compaction: a migration's PRAGMA hook repeating a version stays after the base, and restore replays it",
  async (s, dir) => {
    const changes: Change[] = [
      {
        version: 2,
        statements: [
          "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
          "CREATE TABLE child (id INTEGER PRIMARY KEY, " +
          "parent INTEGER REFERENCES parent(id) ON DELETE CASCADE)",
          "INSERT INTO parent VALUES (1)",
          "INSERT INTO child VALUES (1, 1)",
          bumpStatement(1),
        ],
      },
      // lightningd's table rebuilds turn foreign keys off first: with them on, the DROP
      // would delete the child rows.
      { version: 2, statements: ["PRAGMA foreign_keys = OFF"] },
      {
        version: 3,
        statements: [
          "CREATE TABLE parent_new (id INTEGER PRIMARY KEY)",
          "INSERT INTO parent_new SELECT id FROM parent",
          "DROP TABLE parent",
          "ALTER TABLE parent_new RENAME TO parent",
          bumpStatement(2),
        ],
      },
    ];
    const url = await newBackup(s, dir, changes);
    const node = nodeDump(dir, changes);
    assert(node.includes("child"), "the node keeps its child rows");
    const result = await compactS3(url, s.credentials, { policy: FAST });
    assertEquals([result.base_version, result.versions_folded], [2, 1]);
    assertEquals(await objects(s, url), { base: 1, change: 2 }, "the PRAGMA hook stays");
    assertEquals(await restoredFromS3(s, url, dir), node);
  },
);

test(
  "S3 compaction: the packer goes on after it, the writer counts as a listing does, and the scratch is emptied",
  async (s, dir) => {
    const url = await newBackup(s, dir, range(2, 10));
    const { backend, logs } = await connectLogged(url, {
      credentials: s.credentials,
      policy: FAST,
      packer: { every: 4 },
    });
    const scratch = `${dir}/scratch`;
    Deno.mkdirSync(`${scratch}/cln-backup-s3-compact-left`, { recursive: true });
    Deno.writeTextFileSync(`${scratch}/cln-backup-s3-compact-left/database.sqlite3`, "left");
    try {
      const service = new S3Compaction(backend, () => DEFAULT_POLICY, scratch);
      const compacting = service.compact();
      // The writer goes on while the compaction runs; its packer waits.
      for (const c of range(11, 20)) await backend.append(c);
      const result = await compacting;
      assert(result.base_version !== null && result.base_version >= 9, JSON.stringify(result));
      assertEquals([...Deno.readDirSync(scratch)], [], "the scratch emptied");
      for (const c of range(21, 30)) await backend.append(c);
      await backend.settle();
      const listed = await listBackup(s.client(url));
      const base = listed.find((e) => e.kind === "base")!;
      assert(base.kind === "base");
      assert(
        listed.some((e) => e.kind === "pack" && e.first > base.seq),
        `packs again after the base: ${listed.map((e) => e.key).join(" ")}`,
      );
      assert(backend.unpacked.every((e) => e.seq > base.seq), "nothing the base covers to pack");
      assertEquals(logs.filter((l) => l.startsWith("unusual")), []);
      const fresh = await S3Backend.connect(url, { credentials: s.credentials, policy: FAST });
      assertEquals(backend.state().records, fresh.state().records);
      fresh.close();
    } finally {
      backend.close();
    }
    assertEquals(await restoredFromS3(s, url, dir), nodeDump(dir, range(2, 30)));
  },
);

test("S3 compaction: `backup-compact` in the launcher's plugin, while the node commits", async (s) => {
  await withInitS3Node(s, async (dir, url) => {
    const lightningd = FakeLightningd.spawn({
      lightningDir: dir,
      ...throughLauncher(dir),
    });
    try {
      await lightningd.getmanifest();
      await lightningd.init();
      const commit = async (i: number) =>
        assertEquals(
          await lightningd.transaction([`INSERT INTO vars (name, intval) VALUES ('n${i}', ${i})`]),
          "committed",
          lightningd.aborted,
        );
      for (let i = 0; i < 10; i++) await commit(i);
      let answer: Record<string, unknown> | undefined;
      const compacting = lightningd.request("backup-compact", {}).then((a) => answer = a);
      let during = 0;
      for (let i = 10; answer === undefined; i++) {
        await commit(i);
        const report = status(await lightningd.request("backup-status", {}));
        if ((report.compaction as { running: unknown }).running !== null) during++;
      }
      await compacting;
      assert(during > 0, "hooks were committed while the compaction ran");
      const result = answer!.result as Record<string, unknown>;
      assert(answer!.error === undefined, JSON.stringify(answer));
      assertEquals(typeof result.base_version, "number");
      assert((result.versions_folded as number) >= 10, JSON.stringify(result));
      assertEquals([...Deno.readDirSync(`${dir}/${SCRATCH_DIR}`)], [], "scratch left empty");
      await commit(1000);
      assertEquals((await lightningd.stop()).code, 0);
      assertEquals(
        lightningd.logs.filter((l) => l.level === "broken" || l.level === "unusual"),
        [],
      );
    } finally {
      await lightningd.kill().catch(() => {});
    }
    assertEquals(await restoredFromS3(s, url, dir), dumpDatabase(`${dir}/lightningd.sqlite3`));
  });
});

test("S3 compaction: retention, which an S3 backup does not keep, is logged at init and refused by setconfig", async (s) => {
  await withInitS3Node(s, async (dir) => {
    const lightningd = FakeLightningd.spawn({ lightningDir: dir, ...throughLauncher(dir) });
    try {
      await lightningd.getmanifest();
      // As lightningd sends them: every option with a default, set or not.
      await lightningd.init({
        "backup-compact-auto": true,
        "backup-compact-ratio": 100,
        "backup-compact-min-mib": 64,
        "backup-retain-snapshots": 3,
      });
      const ignored = "an S3 backup keeps one base, the newest compaction's (retention is for a " +
        "file backup)";
      assertEquals(unusual(lightningd), [
        `Ignoring option "backup-retain-snapshots" (3): ${ignored}; remove it from lightningd's ` +
        `config`,
      ]);
      assertEquals(await lightningd.setconfig("backup-retain-snapshots", "2"), {
        error: { code: -32602, message: `Cannot set option 'backup-retain-snapshots': ${ignored}` },
      });
      assertEquals(await lightningd.setconfig("backup-retain-snapshots", "1"), { result: {} });
      // The rest of the policy applies to an S3 backup.
      assertEquals(await lightningd.setconfig("backup-compact-ratio", "50"), { result: {} });
      assertEquals((await lightningd.stop()).code, 0);
    } finally {
      await lightningd.kill().catch(() => {});
    }
  });
});
