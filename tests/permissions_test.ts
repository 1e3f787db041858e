/**
 * The documented launch: lightningd runs the launcher script `init` writes, which runs the
 * plugin with the least-privilege flags of lib/cli/launcher.ts. These tests run that script
 * itself, with PATH pointing nowhere (a systemd service's PATH may lack deno), and show that
 * the plugin works under it and that those flags deny everything else.
 *
 * The plugin has no way to try a forbidden access (and gets no backdoor for the test), so
 * the denials are shown by a probe script run by the very same launcher text with only the
 * program path swapped: same deno, same flags, same working directory.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { PRELUDE, runProbe } from "./support/launch_probe.ts";
import { FakeLightningd, splitMessages } from "./support/fake_lightningd.ts";
import { loadFixture } from "./support/fixtures.ts";
import { dumpDatabase } from "./support/dump.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { restoredWithKey, setUpEncryptedNode } from "./support/encrypted.ts";
import { LAUNCHER_NAME, type LaunchPlan, launchPlan, writeLauncher } from "../lib/cli/launcher.ts";
import { RUNTIME_FLAGS } from "../lib/cli/runtime_flags.ts";
import { writeCredentials } from "./support/rgw.ts";
import { CREDENTIAL_NAME } from "../lib/backends/socket/credential.ts";
import { denoCache } from "./support/installed_deno.ts";

const FILE_BACKEND = new URL("../lib/backends/file/writer.ts", import.meta.url).href;
const NO_PATH = { PATH: "/nonexistent" };

interface Node {
  root: string;
  lightningDir: string;
  backupDir: string;
  url: string;
  plan: LaunchPlan;
  launcher: string;
}

/** A node directory with a secret beside the plugin's files, a file backup, and the launcher. */
function prepareNode(): Node {
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-perm-" });
  const lightningDir = `${root}/node`;
  Deno.mkdirSync(lightningDir);
  Deno.writeFileSync(`${lightningDir}/hsm_secret`, new Uint8Array(32).fill(7), { mode: 0o400 });
  const backupDir = `${root}/backup`;
  createFileBackup(backupDir);
  const url = `file://${backupDir}`;
  writeLockFile(lightningDir, { backend_url: url });
  const plan = launchPlan({ lightningDir, backendUrl: url });
  return { root, lightningDir, backupDir, url, plan, launcher: writeLauncher(plan) };
}

Deno.test("the launcher script runs the plugin over a recorded start, PATH or not", async () => {
  const node = prepareNode();
  try {
    const script = Deno.readTextFileSync(node.launcher);
    assert(script.startsWith("#!/bin/sh\n"));
    const runtime = RUNTIME_FLAGS.map((f) => ` '${f}'`).join("");
    assert(script.includes(`exec '${Deno.execPath()}' 'run'${runtime} '--no-prompt'`), script);
    const fixture = loadFixture("fresh-start");
    const lightningd = FakeLightningd.spawn({
      lightningDir: node.lightningDir,
      command: [node.launcher],
      chunking: { kind: "sizes", sizes: fixture.chunks },
      env: NO_PATH,
    });
    assertEquals(await lightningd.replay(fixture.raw), "committed");
    assertEquals((await lightningd.close()).code, 0, await lightningd.stderr());
    const answers = lightningd.received.filter((m) => String(m.id).startsWith("cln:db_write"));
    assertEquals(answers.length, fixture.summary.db_write_calls);
    assert(answers.every((m) => (m.result as { result?: string }).result === "continue"));
    assertEquals(lightningd.logs.filter((l) => l.level === "broken"), []);
    const restored = `${node.root}/restored.sqlite3`;
    restoreBackup(openReader(node.url), restored);
    assertEquals(dumpDatabase(restored), dumpDatabase(fixture.database));
  } finally {
    Deno.removeSync(node.root, { recursive: true });
  }
});

Deno.test("the launched plugin compacts its backup: the worker runs under the same flags", async () => {
  const node = prepareNode();
  try {
    const lightningd = FakeLightningd.spawn({
      lightningDir: node.lightningDir,
      command: [node.launcher],
      env: NO_PATH,
    });
    await lightningd.getmanifest();
    const writes = splitMessages(loadFixture("fresh-start").raw)
      .filter((m) => m.json.method === "db_write");
    for (const { json } of writes) {
      assertEquals(
        await lightningd.dbWrite(json.params.data_version, json.params.writes),
        "committed",
      );
    }
    await lightningd.init();
    const answer = await lightningd.request("backup-compact", []);
    assertEquals(answer.error, undefined, JSON.stringify(answer.error));
    const result = answer.result as { base_version: number };
    assertEquals(result.base_version, writes.at(-2)!.json.params.data_version);
    assertEquals((await lightningd.stop()).code, 0, await lightningd.stderr());
    const restored = `${node.root}/restored.sqlite3`;
    restoreBackup(openReader(node.url), restored);
    assertEquals(dumpDatabase(restored), dumpDatabase(loadFixture("fresh-start").database));
  } finally {
    Deno.removeSync(node.root, { recursive: true });
  }
});

Deno.test("the launch lets the file backend work and denies everything else", async () => {
  const node = prepareNode();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of listener) conn.close();
  })();
  try {
    const backup = JSON.stringify(node.backupDir);
    const ld = JSON.stringify(node.lightningDir);
    const results = await runProbe(
      node.root,
      node.plan,
      `import { FileBackend } from ${JSON.stringify(FILE_BACKEND)};
import { deflateSync, inflateSync } from "node:zlib";
${PRELUDE}
// What the plugin does, with segments small enough to roll.
await attempt("read backup.lock in the working directory", () =>
  JSON.parse(Deno.readTextFileSync(Deno.cwd() + "/backup.lock")));
await attempt("clock and zlib", () => {
  if (!(performance.now() > 0)) throw new Error("no clock");
  if (inflateSync(deflateSync(new Uint8Array(64))).length !== 64) throw new Error("zlib");
});
await attempt("append, roll, rewind, reopen", async () => {
  const noise = () => Array.from(crypto.getRandomValues(new Uint8Array(200)), (b) => b.toString(16));
  let backend = FileBackend.open("file://" + ${backup}, ${backup}, { segmentBytes: 1024 });
  for (let v = 1; v <= 12; v++) {
    await backend.append({ version: v, statements: ["INSERT INTO t VALUES ('" + noise() + "')"] });
  }
  await backend.rewind();
  backend.close();
  Deno.writeFileSync(${backup} + "/left-by-a-crash.tmp", new Uint8Array(1));
  backend = FileBackend.open("file://" + ${backup}, ${backup}, { segmentBytes: 1024 });
  if (backend.state().version !== 11) throw new Error("version " + backend.state().version);
  backend.close();
  const names = [...Deno.readDirSync(${backup})].map((e) => e.name);
  if (names.some((n) => n.endsWith(".tmp"))) throw new Error("temporary left: " + names);
  if (names.filter((n) => n.startsWith("log-")).length < 3) throw new Error("no roll: " + names);
});
// What it must not do.
await attempt("read hsm_secret", () => Deno.readFileSync("hsm_secret"));
await attempt("read hsm_secret by path", () => Deno.readFileSync(${ld} + "/hsm_secret"));
await attempt("read /etc/passwd", () => Deno.readTextFileSync("/etc/passwd"));
await attempt("list the lightning dir", () => [...Deno.readDirSync(${ld})]);
await attempt("write to the lightning dir", () => Deno.writeTextFileSync(${ld} + "/evil", "x"));
await attempt("write to /tmp", () => Deno.writeTextFileSync("/tmp/cln-backup-evil", "x"));
await attempt("connect to 127.0.0.1", async () =>
  (await Deno.connect({ hostname: "127.0.0.1", port: ${listener.addr.port} })).close());
await attempt("read the environment", () => Deno.env.get("HOME"));
await attempt("run a program", () => new Deno.Command("/bin/sh", { args: ["-c", "true"] }).outputSync());
await attempt("load a library", () => Deno.dlopen("libc.so.6", {}));
await attempt("read system information", () => Deno.hostname());
console.log(JSON.stringify(results));
`,
    );
    assertEquals(results, {
      "read backup.lock in the working directory": "ok",
      "clock and zlib": "ok",
      "append, roll, rewind, reopen": "ok",
      "read hsm_secret": "NotCapable",
      "read hsm_secret by path": "NotCapable",
      "read /etc/passwd": "NotCapable",
      "list the lightning dir": "NotCapable",
      "write to the lightning dir": "NotCapable",
      "write to /tmp": "NotCapable",
      "connect to 127.0.0.1": "NotCapable",
      "read the environment": "NotCapable",
      "run a program": "NotCapable",
      "load a library": "NotCapable",
      "read system information": "NotCapable",
    });
    assertEquals(
      [...Deno.readDirSync(node.lightningDir)].map((e) => e.name).sort(),
      ["backup.lock", "hsm_secret", LAUNCHER_NAME].sort(),
    );
  } finally {
    listener.close();
    await accepting.catch(() => {});
    Deno.removeSync(node.root, { recursive: true });
  }
});

Deno.test("a socket backup's launch may connect to its server and nowhere else", async () => {
  const node = prepareNode();
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accept = async (listener: Deno.Listener) => {
    for await (const conn of listener) conn.close();
  };
  const accepting = [accept(server), accept(other)];
  try {
    const url = `socket:127.0.0.1:${server.addr.port}`;
    writeLockFile(node.lightningDir, { backend_url: url });
    const plan = launchPlan({ lightningDir: node.lightningDir, backendUrl: url });
    const connect = (port: number) =>
      `async () => (await Deno.connect({ hostname: "127.0.0.1", port: ${port} })).close()`;
    const results = await runProbe(
      node.root,
      plan,
      `${PRELUDE}
await attempt("read backup.lock", () => Deno.readTextFileSync("backup.lock"));
await attempt("connect to the backup server", ${connect(server.addr.port)});
await attempt("connect to another port", ${connect(other.addr.port)});
await attempt("read the old backup", () => [...Deno.readDirSync(${
        JSON.stringify(node.backupDir)
      })]);
await attempt("write anywhere", () => Deno.writeTextFileSync("/tmp/cln-backup-evil", "x"));
console.log(JSON.stringify(results));
`,
    );
    assertEquals(results, {
      "read backup.lock": "ok",
      "connect to the backup server": "ok",
      "connect to another port": "NotCapable",
      "read the old backup": "NotCapable",
      "write anywhere": "NotCapable",
    });
  } finally {
    server.close();
    other.close();
    await Promise.allSettled(accepting);
    Deno.removeSync(node.root, { recursive: true });
  }
});

Deno.test("a lightning dir reached through a symlink still finds its backup.lock", async () => {
  const node = prepareNode();
  try {
    const link = `${node.root}/link-to-node`;
    Deno.symlinkSync(node.lightningDir, link);
    const plan = launchPlan({ lightningDir: link, backendUrl: node.url });
    const results = await runProbe(
      node.root,
      plan,
      `${PRELUDE}
await attempt("read backup.lock", () => Deno.readTextFileSync(Deno.cwd() + "/backup.lock"));
console.log(JSON.stringify(results));
`,
    );
    assertEquals(results, { "read backup.lock": "ok" });
  } finally {
    Deno.removeSync(node.root, { recursive: true });
  }
});

/** A node as `init --encrypt` leaves it: an encrypted backup, backup.key, backup.lock, launcher. */
async function prepareEncryptedNode() {
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-perm-enc-" });
  const lightningDir = `${root}/node`;
  Deno.mkdirSync(lightningDir);
  Deno.writeFileSync(`${lightningDir}/hsm_secret`, new Uint8Array(32).fill(7), { mode: 0o400 });
  const { url, key } = await setUpEncryptedNode(lightningDir, `${root}/backup`);
  const plan = launchPlan({ lightningDir, backendUrl: url });
  const launcher = writeLauncher(plan);
  return { node: { root, lightningDir, backupDir: `${root}/backup`, url, plan, launcher }, key };
}

Deno.test("an encrypted backup's plugin runs and compacts under the launch, reading backup.key", async () => {
  const { node, key } = await prepareEncryptedNode();
  try {
    const env = { ...NO_PATH, DENO_DIR: await denoCache() };
    const lightningd = FakeLightningd.spawn({
      lightningDir: node.lightningDir,
      command: [node.launcher],
      env,
    });
    await lightningd.getmanifest();
    const fixture = loadFixture("fresh-start");
    const writes = splitMessages(fixture.raw).filter((m) => m.json.method === "db_write");
    for (const { json } of writes) {
      assertEquals(
        await lightningd.dbWrite(json.params.data_version, json.params.writes),
        "committed",
        lightningd.aborted,
      );
    }
    await lightningd.init();
    const answer = await lightningd.request("backup-compact", []);
    assertEquals(answer.error, undefined, JSON.stringify(answer.error));
    assertEquals((await lightningd.stop()).code, 0, await lightningd.stderr());
    assertEquals(
      restoredWithKey(node.backupDir, key, node.root),
      dumpDatabase(fixture.database),
    );

    // What the launch may read beyond a plain backup's: backup.key, and nothing else new.
    const results = await runProbe(
      node.root,
      node.plan,
      `${PRELUDE}
await attempt("read backup.key", () => Deno.readTextFileSync("backup.key"));
await attempt("read hsm_secret", () => Deno.readFileSync("hsm_secret"));
await attempt("list the lightning dir", () => [...Deno.readDirSync(".")]);
await attempt("write backup.key", () => Deno.writeTextFileSync("backup.key", "{}"));
console.log(JSON.stringify(results));
`,
    );
    assertEquals(results, {
      "read backup.key": "ok",
      "read hsm_secret": "NotCapable",
      "list the lightning dir": "NotCapable",
      "write backup.key": "NotCapable",
    });
  } finally {
    Deno.removeSync(node.root, { recursive: true });
  }
});

Deno.test("a key file that others may read is refused at start: the node stops uncommitted", async () => {
  const { node } = await prepareEncryptedNode();
  try {
    const path = `${node.lightningDir}/backup.key`;
    Deno.chmodSync(path, 0o644);
    const lightningd = FakeLightningd.spawn({
      lightningDir: node.lightningDir,
      command: [node.launcher],
      env: { ...NO_PATH, DENO_DIR: await denoCache() },
    });
    await lightningd.getmanifest();
    const first = splitMessages(loadFixture("fresh-start").raw)
      .find((m) => m.json.method === "db_write")!.json;
    assertEquals(
      await lightningd.dbWrite(first.params.data_version, first.params.writes),
      "aborted",
    );
    const refusal = `Cannot start backup: the key file "${path}" may be read by other users ` +
      `(mode 0644): run chmod 600 "${path}"`;
    assert(
      (lightningd.aborted ?? "").includes(JSON.stringify(refusal).slice(1, -1)),
      lightningd.aborted,
    );
    await lightningd.kill().catch(() => {});
  } finally {
    Deno.removeSync(node.root, { recursive: true });
  }
});

Deno.test("backup.lock pointed at another backup after init: refused at start, told to run doctor", async () => {
  const node = prepareNode();
  try {
    const moved = `${node.root}/moved`;
    createFileBackup(moved);
    writeLockFile(node.lightningDir, { backend_url: `file://${moved}` });
    const lightningd = FakeLightningd.spawn({
      lightningDir: node.lightningDir,
      command: [node.launcher],
      env: NO_PATH,
    });
    await lightningd.getmanifest();
    const first = splitMessages(loadFixture("fresh-start").raw)
      .find((m) => m.json.method === "db_write")!.json;
    assertEquals(
      await lightningd.dbWrite(first.params.data_version, first.params.writes),
      "aborted",
    );
    assertEquals(lightningd.logs.filter((l) => l.level === "broken").map((l) => l.message), [
      `Cannot start backup: the plugin's launcher does not allow it (requires read access to ` +
      `"${moved}"): backup.lock names a backup the launcher was not written for (changed ` +
      `after init?): run "cln-backup doctor --lightning-dir '${node.lightningDir}'", which names ` +
      `the flags the launcher needs`,
    ]);
    await lightningd.kill().catch(() => {});
  } finally {
    Deno.removeSync(node.root, { recursive: true });
  }
});

/**
 * The broken lines of a node whose launcher init wrote for `written`, once backup.lock names
 * `edited` by hand; `prepare` puts the keys the backup needs beside it. Its first change is
 * refused.
 */
async function deniedAfterEdit(
  root: string,
  written: string,
  edited: string,
  prepare: (lightningDir: string) => void,
): Promise<{ lightningDir: string; broken: string[] }> {
  const lightningDir = `${root}/node`;
  Deno.mkdirSync(lightningDir);
  prepare(lightningDir);
  const launcher = writeLauncher(launchPlan({ lightningDir, backendUrl: written }));
  writeLockFile(lightningDir, { backend_url: edited });
  const lightningd = FakeLightningd.spawn({ lightningDir, command: [launcher], env: NO_PATH });
  try {
    await lightningd.getmanifest();
    assertEquals(await lightningd.dbWrite(1, ["CREATE TABLE t (a)"]), "aborted");
    const broken = lightningd.logs.filter((l) => l.level === "broken").map((l) => l.message);
    return { lightningDir, broken };
  } finally {
    await lightningd.kill().catch(() => {});
  }
}

/** The plugin's line for a first change its launcher denies (`denied`: Deno's words). */
function launcherDeniedLine(lightningDir: string, denied: string): string {
  return `Cannot store change 1: the plugin's launcher does not allow it (${denied}): ` +
    `backup.lock names a backup the launcher was not written for (changed after init?): run ` +
    `"cln-backup doctor --lightning-dir '${lightningDir}'", which names the flags the launcher needs`;
}

const S3_KEYS = (dir: string) =>
  writeCredentials(dir, { accessKeyId: "AKID", secretAccessKey: "secret" });
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

Deno.test("an s3:// backup.lock pointed at another endpoint after init: refused at once, told to run doctor", async () => {
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-perm-" });
  try {
    const endpoint = (port: number) =>
      `s3://bucket/node?endpoint=http://127.0.0.1:${port}&path-style=1`;
    // Moved to another store by hand: the launcher still grants the first endpoint only.
    const { lightningDir, broken } = await deniedAfterEdit(
      root,
      endpoint(7480),
      endpoint(7481),
      S3_KEYS,
    );
    assertEquals(broken, [
      launcherDeniedLine(lightningDir, `requires net access to "127.0.0.1:7481"`),
    ]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("an s3:// backup.lock given a CA file after init: refused at once, told to run doctor", async () => {
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-perm-" });
  try {
    const url = "s3://bucket/node?endpoint=https://127.0.0.1:7480&path-style=1";
    // ca= added by hand: the launcher does not let the plugin read that file.
    const ca = `${root}/home-ca.pem`;
    Deno.writeTextFileSync(ca, PEM);
    const { lightningDir, broken } = await deniedAfterEdit(root, url, `${url}&ca=${ca}`, S3_KEYS);
    assertEquals(broken, [launcherDeniedLine(lightningDir, `requires read access to "${ca}"`)]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("a socket+tls: backup.lock given a CA file after init: refused at once, told to run doctor", async () => {
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-perm-" });
  try {
    const address = "socket+tls:127.0.0.1:8700";
    // Moved from a pinned certificate to a CA by hand: the launcher does not let the plugin
    // read that file.
    const ca = `${root}/ca.pem`;
    Deno.writeTextFileSync(ca, PEM);
    const { lightningDir, broken } = await deniedAfterEdit(
      root,
      `${address}?fp=sha256:${"0".repeat(64)}`,
      `${address}?ca=${ca}`,
      (dir) =>
        Deno.writeTextFileSync(
          `${dir}/${CREDENTIAL_NAME}`,
          JSON.stringify({ node: "alice", key: "ab".repeat(32) }),
          { mode: 0o600 },
        ),
    );
    assertEquals(broken, [launcherDeniedLine(lightningDir, `requires read access to "${ca}"`)]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
