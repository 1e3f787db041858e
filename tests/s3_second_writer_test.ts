/**
 * A second writer on an S3 prefix (a copy of the node one change behind) against the links
 * of change objects (docs/FORMAT.md, "On S3"): no packer, compaction or reader resolves the
 * chain of generations wrong, or deletes as garbage an object the history needs.
 *
 * @module
 */
import { assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { note } from "./support/plugin_session.ts";
import type { Rgw } from "./support/rgw.ts";
import { s3BackupAtVersion1 } from "./support/s3_backup.ts";
import { rgwTestInDir } from "./support/shared_rgw.ts";
import { bumpStatement } from "./support/statements.ts";
import type { BackupEntry, Change } from "../lib/backends/backend.ts";
import { compactS3 } from "../lib/backends/s3/compaction.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { S3Backend, type S3BackendOptions } from "../lib/backends/s3/backend.ts";
import { S3BackupReader } from "../lib/backends/s3/reader.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";

const FAST = { timeoutMs: 5_000, retries: 2, retryDelayMs: 50, backoff: 2 };
const test = rgwTestInDir("cln-backup-s3-link-");

const change = (version: number, text = `n${version}`): Change => ({
  version,
  statements: [note(text), bumpStatement(version - 1)],
});

/** A backup with no base and no change yet. */
async function emptyBackup(s: Rgw): Promise<string> {
  const url = s.url(await s.bucket());
  await createS3Backup(url, s.credentials, undefined, FAST);
  return url;
}

/**
 * A backup of n1..n3 that a second writer rewound one change, storing "other3" on generation 1
 * of record 3, then went on with n4; with the options both writers connected with.
 */
async function rewoundBackup(s: Rgw): Promise<{ url: string; options: S3BackendOptions }> {
  const url = await emptyBackup(s);
  const options = { credentials: s.credentials, policy: FAST, packer: { every: 1000 } };
  const first = await S3Backend.connect(url, options);
  for (let v = 1; v <= 3; v++) await first.append({ version: v, statements: [note(`n${v}`)] });
  first.close();
  const writer = await S3Backend.connect(url, options);
  await writer.rewind();
  await writer.append({ version: 3, statements: [note("other3")] });
  await writer.append({ version: 4, statements: [note("n4")] });
  writer.close();
  return { url, options };
}

/** Deletes the rewind's generation 1 of record 3; the dropped generation 0 stays. */
async function deleteRewound(s: Rgw, url: string): Promise<void> {
  const rewound = (await listBackup(s.client(url))).find((e) =>
    e.kind === "change" && e.seq === 3 && e.gen === 1
  )!;
  await s.client(url).delete(rewound.key);
}

/** The notes of the changes a restore replays (after the newest base). */
async function restoredNotes(s: Rgw, url: string): Promise<string[]> {
  const reader = await S3BackupReader.fetch(url, s.credentials, FAST);
  try {
    return [...reader.entries()].filter((e): e is Extract<BackupEntry, { kind: "change" }> =>
      e.kind === "change"
    ).map((e) => e.statements[0].replace(/.*VALUES \('(.*)'\)/, "$1"));
  } finally {
    reader.close();
  }
}

test(
  "S3 second writer: the copy's packer deletes the node's generation it discarded, and a restore mixes the histories",
  async (s) => {
    const url = await emptyBackup(s);
    const node = await S3Backend.connect(url, {
      credentials: s.credentials,
      policy: FAST,
      packer: { every: 1000 },
    });
    for (let v = 1; v <= 5; v++) await node.append({ version: v, statements: [note(`n${v}`)] });
    // A copy one change behind, whose packer is due (more than `every` change objects wait).
    const copy = await S3Backend.connect(url, {
      credentials: s.credentials,
      policy: FAST,
      packer: { every: 3 },
    });
    await copy.rewind();
    await copy.append({ version: 5, statements: [note("copy5")] });
    await copy.settle();
    // The node goes on: its change 6 is stored on its own generation 0 of record 5, and the
    // copy's next write is refused (as the commit intends).
    await node.append({ version: 6, statements: [note("n6")] });
    await assertRejects(() => copy.append({ version: 6, statements: [note("x")] }));
    node.close();
    copy.close();
    // The node's history, never the copy's change 5 under the node's change 6.
    assertEquals(await restoredNotes(s, url), ["n1", "n2", "n3", "n4", "n5", "n6"]);
  },
);

test(
  "S3 second writer: a compaction between the copy's rewind and the node's next change deletes the node's generation",
  async (s, dir) => {
    const url = await s3BackupAtVersion1(s, dir, FAST);
    const options = { credentials: s.credentials, policy: FAST, packer: { every: 1000 } };
    const node = await S3Backend.connect(url, options);
    for (let v = 2; v <= 5; v++) await node.append(change(v));
    const copy = await S3Backend.connect(url, options);
    await copy.rewind();
    await copy.append(change(5, "copy5"));
    // The plugin's automatic compaction, or `compact` from the CLI, at this moment.
    await compactS3(url, s.credentials, { policy: FAST });
    await node.append(change(6));
    await assertRejects(() => copy.append(change(6, "x")));
    node.close();
    copy.close();
    // The base holds n2..n4; the node's n5 and n6 follow it.
    assertEquals(await restoredNotes(s, url), ["n5", "n6"]);
  },
);

test(
  "S3 second writer: a rewind's generation deleted below the newest is damage (FORMAT.md), not read as the dropped change",
  async (s) => {
    const { url } = await rewoundBackup(s);
    assertEquals(await restoredNotes(s, url), ["n1", "n2", "other3", "n4"]);
    await deleteRewound(s, url);
    // docs/FORMAT.md: "Below the newest, the link of the change after it makes that damage,
    // named." A restore of the dropped change under n4 is a mix of two histories.
    const damage = await assertRejects(() => restoredNotes(s, url));
    assertMatch(damage.message, /lacks generation 1/);
  },
);

test(
  "S3 second writer: the packer does not pack a change over a generation its link does not name",
  async (s) => {
    const { url, options } = await rewoundBackup(s);
    await deleteRewound(s, url);
    // The next start's packer: packing the dropped change under n4 would hide the damage
    // (a pack says nothing of generations) and the change objects that show it go.
    const logged: string[] = [];
    const next = await S3Backend.connect(url, {
      ...options,
      packer: { every: 2 },
      log: (_level, message) => logged.push(message),
    });
    await next.append({ version: 5, statements: [note("n5")] });
    await next.settle();
    next.close();
    const damage = await assertRejects(() => restoredNotes(s, url));
    assertMatch(damage.message, /lacks generation 1/);
  },
);
