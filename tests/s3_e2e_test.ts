/**
 * The `s3://` backup end to end against a real S3 server (Ceph RGW): the real plugin process
 * under the fake lightningd, with its keys in backup-s3.credentials; `init`, `restore`,
 * `status` and `verify` with the keys in the environment.
 */
import { replayRecordedRuns } from "./support/plugin_session.ts";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd, throughLauncher } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { writeCredentials } from "./support/rgw.ts";
import { loadFixture } from "./support/fixtures.ts";
import { withInitS3Node } from "./support/s3_backup.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { restore } from "../lib/cli/restore.ts";
import { status } from "../lib/cli/status.ts";
import { verify } from "../lib/cli/verify.ts";
import { createS3Backup } from "../lib/backends/s3/create.ts";
import { listBackup } from "../lib/backends/s3/layout.ts";
import { CREDENTIALS_FILE } from "../lib/backends/s3/credentials.ts";
import { LAUNCHER_NAME, parseLauncher, WORKER_CODE } from "../lib/cli/launcher.ts";
import { SCRATCH_DIR } from "../lib/backends/plugin_scratch.ts";
import { launchAndCommit } from "./support/launch_probe.ts";
import { existsSync } from "../lib/fs/exists.ts";

/** Starts the plugin on `dir`, commits one transaction, and gives `body` the node. */
async function oneTransaction(
  dir: string,
  body: (lightningd: FakeLightningd) => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  const lightningd = FakeLightningd.spawn({ lightningDir: dir, env: { AWS_ACCESS_KEY_ID: "" } });
  try {
    await lightningd.getmanifest();
    assertEquals(
      await lightningd.transaction(["DELETE FROM vars WHERE name = 'x'"]),
      "committed",
      lightningd.aborted,
    );
    await body(lightningd);
    assertEquals((await lightningd.stop()).code, 0);
  } finally {
    await lightningd.kill().catch(() => {});
  }
}

const test = rgwTest;

test("the recorded runs back up to S3, and restore, status and verify read it", async () => {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket(), "nodes/one");
  const root = Deno.makeTempDirSync({ prefix: "s3-e2e-" });
  try {
    const dir = `${root}/node`;
    Deno.mkdirSync(dir);
    await createS3Backup(url, s.credentials);
    writeLockFile(dir, { backend_url: url });
    writeCredentials(dir, s.credentials);
    await replayRecordedRuns(dir, { AWS_ACCESS_KEY_ID: "" });
    await oneTransaction(dir, async (lightningd) => {
      const answer = await lightningd.request("backup-status", {});
      const result = answer.result as Record<string, unknown>;
      const connection = result.connection as Record<string, unknown>;
      assertEquals([result.backend_url, result.version, result.ok], [url, 480, true]);
      assertMatch(String(connection.destination), /^bucket "b[0-9a-f]+" at http:\/\/127\.0\.0\.1:/);
      assertEquals(connection.state, "connected");
      assert(typeof connection.last_ack_ms === "number" && connection.last_ack_ms > 0);
    });
    const node = dumpDatabase(`${dir}/lightningd.sqlite3`);
    const output = new BufferedOutput();
    assertEquals(await restore([url, `${root}/restored.sqlite3`], output), 0, output.transcript);
    assertEquals(dumpDatabase(`${root}/restored.sqlite3`), node);
    const described = new BufferedOutput();
    assertEquals(await status([url, "--json"], described), 0, described.transcript);
    const description = JSON.parse(described.stdout[0]);
    assertEquals([description.url, description.lastVersion], [url, 480]);
    const verified = new BufferedOutput();
    assertEquals(await verify([url], verified), 0, verified.transcript);
    assertMatch(verified.stdout[0], /^OK: "s3:\/\/.*" holds versions/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

test("init to S3 uploads the snapshot; the plugin goes on from it; a second init is refused", async () => {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket());
  const dir = makeNodeDir("restart");
  const restored = Deno.makeTempDirSync();
  try {
    // Keys in the environment do for init, but the plugin reads only the file.
    const refused = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", dir], refused), 1);
    assertMatch(
      refused.stderr[0],
      /reads its S3 keys from ".*backup-s3.credentials" only, and there is none: write/,
    );
    assertEquals(await listBackup(s.client(url)), [], "nothing uploaded");
    writeCredentials(dir, s.credentials);
    const output = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.transcript);
    assertMatch(output.stdout[0], /^Created the backup s3:.* at version 15$/);
    const bases = (await listBackup(s.client(url))).filter((e) => e.kind === "base");
    assertEquals(bases.map((b) => [b.version, b.seq]), [[15, 0]]);
    await oneTransaction(dir);
    const restoring = new BufferedOutput();
    assertEquals(await restore([url, restored], restoring), 0, restoring.stderr.join("\n"));
    assertEquals(
      dumpDatabase(`${restored}/lightningd.sqlite3`),
      dumpDatabase(`${dir}/lightningd.sqlite3`),
    );
    const other = makeNodeDir("restart");
    writeCredentials(other, s.credentials);
    try {
      const again = new BufferedOutput();
      assertEquals(await init([url, "--lightning-dir", other], again), 1);
      assertMatch(again.stderr[0], /already holds objects .*: choose a new prefix/);
    } finally {
      removeNodeDir(other);
    }
  } finally {
    removeNodeDir(dir);
    Deno.removeSync(restored, { recursive: true });
  }
});

test("init --existing on S3 wants the keys' file the plugin reads, not the environment's", async () => {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket());
  const dir = makeNodeDir("restart");
  const other = makeNodeDir();
  try {
    writeCredentials(dir, s.credentials);
    assertEquals(await init([url, "--lightning-dir", dir], new BufferedOutput()), 0);
    await oneTransaction(dir);
    // A new machine: the database restored with the keys in the environment.
    assertEquals(await restore([url, other], new BufferedOutput()), 0);
    const refused = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", other, "--existing"], refused), 1);
    assertMatch(
      refused.stderr[0],
      /^Cannot init backup: the plugin reads its S3 keys from ".*backup-s3.credentials" only, and there is none: write/,
    );
    assertEquals(existsSync(`${other}/backup.lock`), false);
    writeCredentials(other, s.credentials);
    const output = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", other, "--existing"], output), 0);
    assertMatch(output.stdout[0], /^Took the backup s3:.* as this node's: .* at version 16;/);
    await oneTransaction(other);
  } finally {
    removeNodeDir(dir);
    removeNodeDir(other);
  }
});

test("init into a lightning dir the launcher cannot name uploads nothing", async () => {
  const s = sharedRgw();
  const url = s.url(await s.bucket());
  // Deno's permission lists are comma separated: no launcher can grant this dir's backup.lock.
  const base = Deno.makeTempDirSync({ prefix: "cln-backup-test-a,b-" });
  const dir = `${base}/regtest`;
  try {
    Deno.mkdirSync(dir);
    Deno.copyFileSync(loadFixture("restart").database, `${dir}/lightningd.sqlite3`);
    writeCredentials(dir, s.credentials);
    const refused = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", dir], refused), 1);
    assertEquals(refused.stderr.length, 1, refused.transcript);
    assertMatch(
      refused.stderr[0],
      /^Cannot grant access to ".*a,b-.*\/regtest\/[^"]+": Deno's permission flags cannot name a path with a comma/,
    );
    assertEquals(await listBackup(s.client(url)), [], "nothing uploaded");
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

test("the plugin refuses every change when its keys' file may be read by others", async () => {
  const s = sharedRgw({ exportKeys: true });
  const url = s.url(await s.bucket());
  const dir = makeNodeDir("restart");
  try {
    await createS3Backup(url, s.credentials);
    writeLockFile(dir, { backend_url: url });
    writeCredentials(dir, s.credentials, 0o644);
    const lightningd = FakeLightningd.spawn({
      lightningDir: dir,
      env: { AWS_ACCESS_KEY_ID: "" },
    });
    try {
      await lightningd.getmanifest();
      assertEquals(
        await lightningd.transaction(["DELETE FROM vars WHERE name = 'x'"]),
        "aborted",
      );
      assertMatch(
        lightningd.aborted ?? "",
        /Cannot reach the S3 backup: the S3 keys' file .* may be read by other users \(mode 0644\): run chmod 600/,
      );
    } finally {
      await lightningd.kill().catch(() => {});
    }
  } finally {
    removeNodeDir(dir);
  }
});

test("the launcher's plugin reads its keys' file and reaches the endpoint only", async () => {
  const s = sharedRgw({ exportKeys: true });
  await withInitS3Node(s, async (dir, url) => {
    const launcher = `${dir}/${LAUNCHER_NAME}`;
    const { args } = parseLauncher(Deno.readTextFileSync(launcher))!;
    const real = Deno.realPathSync(dir);
    assertEquals(args.filter((a) => a.startsWith("--allow")), [
      `--allow-read=${real}/backup.lock,${real}/backup.key,${real}/${CREDENTIALS_FILE},` +
      `${WORKER_CODE},${real}/${SCRATCH_DIR}`,
      `--allow-write=${real}/${SCRATCH_DIR}`,
      "--allow-sys=setPriority",
      `--allow-net=127.0.0.1:${s.port}`,
    ]);
    const lightningd = await launchAndCommit(dir, launcher, 3);
    try {
      assertEquals((await lightningd.stop()).code, 0);
      assertEquals(lightningd.garbage, []);
    } finally {
      await lightningd.kill().catch(() => {});
    }
    const restored = `${dir}/../restored.sqlite3`;
    assertEquals(await restore([url, restored], new BufferedOutput()), 0);
    assertEquals(dumpDatabase(restored), dumpDatabase(`${dir}/lightningd.sqlite3`));
  });
});

test("the launcher's plugin without its keys' file says to write it, not to set AWS_*", async () => {
  const s = sharedRgw({ exportKeys: true });
  await withInitS3Node(s, async (dir) => {
    Deno.removeSync(`${dir}/${CREDENTIALS_FILE}`);
    const lightningd = FakeLightningd.spawn({
      lightningDir: dir,
      ...throughLauncher(dir),
    });
    try {
      await lightningd.getmanifest();
      assertEquals(await lightningd.transaction(["DELETE FROM vars WHERE name = 'x'"]), "aborted");
      // Its launcher grants no environment: the variables would not reach it.
      assertMatch(
        lightningd.aborted ?? "",
        /Cannot reach the S3 backup: no keys: write them to \\".*\/backup-s3.credentials\\" \(mode/,
      );
    } finally {
      await lightningd.kill().catch(() => {});
    }
  });
});
