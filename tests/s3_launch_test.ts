/**
 * The launch of a node with several destinations, against a real S3 server (Ceph RGW):
 * `init --mirror --async` makes every copy from one snapshot and writes a launcher that grants
 * each destination what it needs; the plugin it starts backs up to a file primary, an S3
 * mirror and an S3 async copy, which all restore equal to the node; and a probe run by the
 * same launcher text shows that nothing else can be reached.
 */
import { assert, assertEquals } from "./support/assert.ts";
import type { FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { launchAndCommit, PRELUDE, runProbe } from "./support/launch_probe.ts";
import { writeCredentials } from "./support/rgw.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { restore } from "../lib/cli/restore.ts";
import { CREDENTIALS_FILE } from "../lib/backends/s3/credentials.ts";
import { S3Backend } from "../lib/backends/s3/backend.ts";
import { SCRATCH_DIR } from "../lib/backends/plugin_scratch.ts";
import type { AsyncDestinationStatus } from "../lib/backends/backend.ts";
import { LAUNCHER_NAME, lockLaunchPlan, parseLauncher, WORKER_CODE } from "../lib/cli/launcher.ts";

const test = rgwTest;

/** Polls `backup-status` until the first async copy fits `wanted` (at most 20 s). */
async function waitForCopy(
  lightningd: FakeLightningd,
  wanted: (status: AsyncDestinationStatus) => boolean,
): Promise<AsyncDestinationStatus> {
  let copy: AsyncDestinationStatus | undefined;
  for (let i = 0; i < 400; i++) {
    const status = (await lightningd.request("backup-status", {})).result as {
      async_destinations: AsyncDestinationStatus[];
    };
    copy = status.async_destinations[0];
    if (wanted(copy)) return copy;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the async copy never got there: ${JSON.stringify(copy)}`);
}

/** A node with a database, its S3 keys beside backup.lock, set up by init with three copies. */
async function initNode() {
  const s = sharedRgw({ exportKeys: true });
  const dir = makeNodeDir("restart");
  writeCredentials(dir, s.credentials);
  const bucket = await s.bucket();
  const primary = `${dir}/../primary`;
  const urls = {
    file: `file://${Deno.realPathSync(`${dir}/..`)}/primary`,
    mirror: s.url(bucket, "mirror"),
    async: s.url(bucket, "async"),
  };
  const output = new BufferedOutput();
  const code = await init(
    ["--lightning-dir", dir, urls.file, "--mirror", urls.mirror, "--async", urls.async],
    output,
  );
  assertEquals(code, 0, output.transcript);
  return { s, dir, primary, urls, output };
}

test("init --mirror --async: the launched plugin backs up to each; each restores equal", async () => {
  const { s, dir, urls, output } = await initNode();
  try {
    assertEquals(output.stdout.filter((l) => l.startsWith("Created the copy")).length, 2);
    // Each S3 copy is tied to its backup id, as its backup-id object holds it.
    const idOf = async (url: string) => {
      const backend = await S3Backend.connect(url, { credentials: s.credentials });
      backend.close();
      return await backend.backupIdHex();
    };
    assertEquals(readLockFile(dir), {
      backend_url: urls.file,
      mirror_urls: [urls.mirror],
      async_urls: [urls.async],
      backup_ids: { [urls.mirror]: await idOf(urls.mirror), [urls.async]: await idOf(urls.async) },
    });
    const launcher = `${dir}/${LAUNCHER_NAME}`;
    const { args } = parseLauncher(Deno.readTextFileSync(launcher))!;
    const real = Deno.realPathSync(dir);
    const primaryPath = new URL(urls.file).pathname;
    assertEquals(args.filter((a) => a.startsWith("--allow")), [
      `--allow-read=${real}/backup.lock,${real}/backup.key,${primaryPath},${WORKER_CODE},` +
      `${real}/${CREDENTIALS_FILE},${real}/${SCRATCH_DIR}`,
      `--allow-write=${primaryPath},${real}/${SCRATCH_DIR}`,
      "--allow-sys=setPriority",
      `--allow-net=127.0.0.1:${s.port}`,
    ]);
    const lightningd = await launchAndCommit(dir, launcher, 5);
    try {
      const version = lightningd.dataVersion();
      const copy = await waitForCopy(lightningd, (s) => s.state === "caught-up");
      assertEquals(copy.version, version, JSON.stringify(copy));
      // Each destination compacts under the launch's grants.
      const compacted = await lightningd.request("backup-compact", []);
      const destinations = (compacted.result as { destinations: Record<string, unknown>[] })
        ?.destinations;
      assertEquals(
        destinations?.map((d) => [d.url, d.error]),
        [[urls.file, null], [urls.mirror, null], [urls.async, null]],
        JSON.stringify(compacted),
      );
      assertEquals((await lightningd.stop()).code, 0);
      assertEquals(lightningd.garbage, []);
    } finally {
      await lightningd.kill().catch(() => {});
    }
    const node = dumpDatabase(`${dir}/lightningd.sqlite3`);
    for (const [name, url] of Object.entries(urls)) {
      const target = `${dir}/../restored-${name}.sqlite3`;
      const restored = new BufferedOutput();
      assertEquals(await restore([url, target], restored), 0, restored.transcript);
      assertEquals(dumpDatabase(target), node, name);
    }
  } finally {
    removeNodeDir(dir);
  }
});

test("the launch of a file primary with S3 copies reaches the endpoint and nothing else", async () => {
  const { s, dir, urls } = await initNode();
  const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of other) conn.close();
  })();
  try {
    Deno.writeFileSync(`${dir}/hsm_secret`, new Uint8Array(32).fill(7), { mode: 0o400 });
    Deno.mkdirSync(`${dir}/../elsewhere`);
    const plan = lockLaunchPlan(dir, readLockFile(dir));
    const primary = JSON.stringify(new URL(urls.file).pathname);
    const connect = (port: number) =>
      `async () => (await Deno.connect({ hostname: "127.0.0.1", port: ${port} })).close()`;
    const results = await runProbe(
      `${dir}/..`,
      plan,
      `${PRELUDE}
await attempt("read backup.lock", () => Deno.readTextFileSync("backup.lock"));
await attempt("read the S3 keys", () => Deno.readTextFileSync(${JSON.stringify(CREDENTIALS_FILE)}));
await attempt("write the primary", () => Deno.writeTextFileSync(${primary} + "/probe", "x"));
await attempt("connect to the S3 endpoint", ${connect(s.port)});
await attempt("connect to another port", ${connect(other.addr.port)});
await attempt("read hsm_secret", () => Deno.readFileSync("hsm_secret"));
await attempt("read the database", () => Deno.readFileSync("lightningd.sqlite3"));
await attempt("write beside the primary", () =>
  Deno.writeTextFileSync(${primary} + "/../elsewhere/x", "x"));
await attempt("write to /tmp", () => Deno.writeTextFileSync("/tmp/cln-backup-evil", "x"));
await attempt("read the environment", () => Deno.env.get("HOME"));
await attempt("run a program", () => new Deno.Command("/bin/sh", { args: ["-c", "true"] }).outputSync());
console.log(JSON.stringify(results));
`,
    );
    assertEquals(results, {
      "read backup.lock": "ok",
      "read the S3 keys": "ok",
      "write the primary": "ok",
      "connect to the S3 endpoint": "ok",
      "connect to another port": "NotCapable",
      "read hsm_secret": "NotCapable",
      "read the database": "NotCapable",
      "write beside the primary": "NotCapable",
      "write to /tmp": "NotCapable",
      "read the environment": "NotCapable",
      "run a program": "NotCapable",
    });
  } finally {
    other.close();
    await accepting.catch(() => {});
    removeNodeDir(dir);
  }
});

test("an S3 primary's async copy catches up through the launcher's scratch directory", async () => {
  const s = sharedRgw({ exportKeys: true });
  const dir = makeNodeDir("restart");
  try {
    writeCredentials(dir, s.credentials);
    const primary = s.url(await s.bucket());
    const copy = `file://${Deno.realPathSync(`${dir}/..`)}/copy`;
    const output = new BufferedOutput();
    assertEquals(await init(["--lightning-dir", dir, primary, "--async", copy], output), 0);
    const lock = readLockFile(dir);
    const launcher = `${dir}/${LAUNCHER_NAME}`;
    // The first run without the copy, which then lags by its changes.
    writeLockFile(dir, { backend_url: primary });
    const alone = await launchAndCommit(dir, launcher, 4);
    assertEquals((await alone.stop()).code, 0);
    writeLockFile(dir, lock);
    const lightningd = await launchAndCommit(dir, launcher, 1);
    try {
      const version = lightningd.dataVersion();
      const copied = await waitForCopy(lightningd, (s) => s.state === "caught-up");
      assertEquals(copied.version, version, JSON.stringify(copied));
      assert(
        lightningd.logs.some((l) => /caught up from the primary/.test(l.message)),
        JSON.stringify(lightningd.logs),
      );
      assertEquals((await lightningd.stop()).code, 0);
    } finally {
      await lightningd.kill().catch(() => {});
    }
    const target = `${dir}/../restored.sqlite3`;
    const restored = new BufferedOutput();
    assertEquals(await restore([copy, target], restored), 0, restored.transcript);
    assertEquals(dumpDatabase(target), dumpDatabase(`${dir}/lightningd.sqlite3`));
  } finally {
    removeNodeDir(dir);
  }
});
