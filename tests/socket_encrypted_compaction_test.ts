/**
 * Compaction of an encrypted backup on a server, made where the key is: the plugin's
 * `backup-compact` (under its launcher) restores a fetch of the backup in cln-backup-scratch,
 * seals the new base and uploads it; the server swaps it in while the node's hooks flow, every
 * one answered. The restore equals the node, before and after, and to a version after the new
 * base. A server killed at each step of the swap leaves a backup that restores equal, and the
 * next compaction finishes the job.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { activityWrites, compactWhileWriting } from "./support/compact_while_writing.ts";
import { loadFixture } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { launchArgs, lockLaunchPlan } from "../lib/cli/launcher.ts";
import { readLockFile } from "../lib/backup/lock_file.ts";
import { readChain } from "../lib/format/chain.ts";
import { FileBackupReader } from "../lib/backends/file/reader.ts";
import { compactSealed } from "../lib/backends/socket/sealed_compaction.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import { DEFAULT_RETRY_POLICY } from "../lib/backends/socket/options.ts";
import { SEAM_ENV } from "../lib/fs/step_seam.ts";
import { baseName } from "../lib/format/layout.ts";
import { DELETION_PLAN } from "../lib/compact/deletion.ts";
import { PASSPHRASE } from "./support/encrypted.ts";
import { CREDENTIAL_ENV } from "../lib/backends/socket/credential.ts";
import {
  cli,
  type EncryptedServer,
  initEncrypted,
  restoredWith,
  startEncryptedServer,
} from "./support/encrypted_server.ts";
import { serverStatus } from "../lib/backends/socket/server_checks.ts";
import type { DataKey } from "../lib/crypto/data_key.ts";

/** Compacts alice's backup here up to the version before its newest change. */
async function compactHere(s: EncryptedServer, key: DataKey) {
  const { lastVersion } = await serverStatus(s.url, s.credential);
  return await compactSealed({
    url: s.url,
    target: socketUrl(s.url),
    credential: s.credential,
    key: key.bytes,
    version: lastVersion - 1,
    scratch: `${s.root}/scratch`,
    timeoutMs: 5_000,
    compactTimeoutMs: DEFAULT_RETRY_POLICY.compactTimeoutMs,
  });
}

/** Three more transactions of alice's node, through the plugin. */
async function writeMore(s: EncryptedServer, env: Record<string, string>, round: number) {
  const node = FakeLightningd.spawn({ lightningDir: s.dir, env });
  for (let i = 0; i < 3; i++) {
    const outcome = await node.transaction([`DELETE FROM vars WHERE name = 'r${round}-${i}'`]);
    assertEquals(outcome, "committed", node.aborted);
  }
  assertEquals((await node.close()).code, 0, await node.stderr());
}

/** The fresh-start and restart runs through the plugin into alice's backup. */
async function replayFirstRuns(s: EncryptedServer, env: Record<string, string>) {
  for (const name of ["fresh-start", "restart"] as const) {
    const node = FakeLightningd.spawn({ lightningDir: s.dir, env });
    assertEquals(await node.replay(loadFixture(name).raw), "committed", node.aborted);
    assertEquals((await node.close()).code, 0, await node.stderr());
  }
}

Deno.test("encrypted server backup: backup-compact builds the base on the node while hooks flow; restores equal", async () => {
  const s = await startEncryptedServer();
  try {
    const key = await initEncrypted(s);
    const env = { CLN_BACKUP_TEST_SEGMENT_BYTES: String(32 * 1024) };
    await replayFirstRuns(s, env);
    const before = await restoredWith(s, key);
    const plan = lockLaunchPlan(s.dir, readLockFile(s.dir));
    const lightningd = FakeLightningd.spawn({
      lightningDir: s.dir,
      command: [plan.deno, ...launchArgs(plan)],
      env,
    });
    try {
      await lightningd.getmanifest();
      await lightningd.init({});
      const { results, overlapped } = await compactWhileWriting(lightningd);
      assert(results.length >= 3, `${results.length} compactions`);
      assert(overlapped > 0, "hooks were answered while a compaction was made");
      assert(results.some((r) => typeof r.base_version === "number"), JSON.stringify(results));
      assertEquals((await lightningd.stop()).code, 0);
    } finally {
      await lightningd.kill().catch(() => {});
    }
    assertEquals(
      lightningd.logs.filter((l) => l.level === "broken"),
      [],
      JSON.stringify(lightningd.logs.slice(-5)),
    );
    const dump = dumpDatabase(`${s.dir}/lightningd.sqlite3`);
    assertEquals(dump, dumpDatabase(loadFixture("activity").database));
    assert(before !== dump);
    const chain = readChain(s.storage);
    assertEquals(chain.bases.length, 1, "older bases were deleted after the swap");
    assert(chain.bases[0].number > 0 && chain.bases[0].header.keyId !== undefined);
    assertEquals(await restoredWith(s, key), dump, "after compaction");
    const last = activityWrites().at(-1)!.version;
    assertEquals(await restoredWith(s, key, last), dump, "to the last version");
    // The scratch work is gone.
    const scratch = [...Deno.readDirSync(`${s.dir}/cln-backup-scratch`)];
    assertEquals(scratch.map((e) => e.name), []);
  } finally {
    await s.stop();
  }
});

Deno.test("encrypted server backup: a server killed at each step of the swap leaves a backup that restores equal", async () => {
  const s = await startEncryptedServer();
  try {
    const key = await initEncrypted(s);
    const env = { CLN_BACKUP_TEST_SEGMENT_BYTES: String(4 * 1024) };
    await replayFirstRuns(s, env);
    for (const [round, step] of ["compact-after-base", "compact-mid-delete"].entries()) {
      await writeMore(s, env, round);
      const dump = dumpDatabase(`${s.dir}/lightningd.sqlite3`);
      const { lastVersion } = await serverStatus(s.url, s.credential);
      await s.restartServer({ [SEAM_ENV]: `crash@${step}` });
      let failed = "";
      try {
        await compactHere(s, key);
      } catch (error) {
        failed = (error as Error).message;
      }
      assertMatch(failed, /^Cannot compact backup: the server closed the connection/);
      // It died at the step: the new base is durable under its name; in the second round
      // the deletes were planned and had begun.
      const left = Deno.readDirSync(s.storage).toArray().map((e) => e.name);
      assert(left.includes(baseName(lastVersion - 1)), left.join(" "));
      assertEquals(left.includes(DELETION_PLAN), step === "compact-mid-delete", left.join(" "));
      // A new server opens the backup as the crash left it.
      await s.restartServer({});
      assertEquals(await restoredWith(s, key), dump, `killed at ${step}`);
    }
    // A compaction after the crashes goes through, and one base is left; past versions it
    // keeps restore as before it.
    await writeMore(s, env, 2);
    const dump = dumpDatabase(`${s.dir}/lightningd.sqlite3`);
    const { lastVersion } = await serverStatus(s.url, s.credential);
    const past = await restoredWith(s, key, lastVersion - 1);
    // This one by the CLI, its key opened from the passphrase.
    const cliRun = await cli(["compact", s.url, "--json"], {
      [CREDENTIAL_ENV]: s.credential.path,
      CLN_BACKUP_PASSPHRASE: PASSPHRASE,
    });
    assertEquals(cliRun.code, 0, cliRun.stderr);
    assertEquals(JSON.parse(cliRun.stdout).base_version, lastVersion - 1);
    assertEquals(await restoredWith(s, key, lastVersion - 1), past, "to a past version");
    const chain = readChain(s.storage);
    assertEquals(chain.bases.length, 1);
    assertEquals(chain.start, chain.bases[0].header.firstLog, "the logs it covers are gone");
    assert(chain.start > 1, `the logs rolled: the chain starts at log ${chain.start}`);
    assert(!Deno.readDirSync(s.storage).some((e) => e.name === DELETION_PLAN));
    assertEquals(await restoredWith(s, key), dump, "after the last compaction");
  } finally {
    await s.stop();
  }
});

Deno.test("encrypted server backup near its quota is compacted: its base takes the place of what it covers", async () => {
  const s = await startEncryptedServer();
  try {
    const key = await initEncrypted(s);
    const env = { CLN_BACKUP_TEST_SEGMENT_BYTES: String(4 * 1024) };
    await replayFirstRuns(s, env);
    await writeMore(s, env, 0);
    const dump = dumpDatabase(`${s.dir}/lightningd.sqlite3`);
    // A quota the backup plus its new base would pass, which the base alone does not.
    const { bytes } = await serverStatus(s.url, s.credential);
    await s.restartServer({}, ["--quota-bytes", String(bytes + 1024)]);
    const result = await compactHere(s, key);
    assert(
      result.after.backupsize < bytes,
      `${result.after.backupsize} bytes after, ${bytes} before`,
    );
    assertEquals(await restoredWith(s, key), dump);
  } finally {
    await s.stop();
  }
});

Deno.test("encrypted server backup compacted twice: the second has nothing to fold, and says so without failing", async () => {
  const s = await startEncryptedServer();
  try {
    const key = await initEncrypted(s);
    await replayFirstRuns(s, { CLN_BACKUP_TEST_SEGMENT_BYTES: String(4 * 1024) });
    const first = await compactHere(s, key);
    assertEquals(typeof first.base_version, "number");
    // As a file backup's, a server's plain one's or an S3 one's: a result, not an error.
    const second = await compactHere(s, key);
    assertEquals([second.base_version, second.versions_folded, second.bytes_freed], [null, 0, 0]);
    assertEquals(second.after, second.before);
    assertEquals(second.after.backupsize, (await serverStatus(s.url, s.credential)).bytes);
    // Counted here from the copy as the server counted it after the swap: each change held,
    // and the base once, whatever its parts.
    assertEquals(second.after, first.after);
    assertEquals(first.after, new FileBackupReader(`file://${s.storage}`, s.storage).heldStats());
  } finally {
    await s.stop();
  }
});

Deno.test("encrypted server backup compacted by the CLI, failing: no running node is named (it is stopped)", async () => {
  const s = await startEncryptedServer();
  try {
    await initEncrypted(s);
    await replayFirstRuns(s, { CLN_BACKUP_TEST_SEGMENT_BYTES: String(4 * 1024) });
    const run = await cli(["compact", s.url], {
      [CREDENTIAL_ENV]: s.credential.path,
      CLN_BACKUP_PASSPHRASE: "not the passphrase",
    });
    assertEquals(run.code, 1, run.stderr);
    assertMatch(
      run.stderr,
      /^Cannot compact backup: .* \(building the encrypted base at version \d+ here\); the backup on the server restores as before \(the server swaps a base in whole or not at all\)$/,
    );
  } finally {
    await s.stop();
  }
});
