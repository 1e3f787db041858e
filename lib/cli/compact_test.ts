import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { restoredDump } from "../../tests/support/restored.ts";
import { PRE_4090_BACKUP, SCENARIOS } from "../../tests/support/fixtures.ts";
import { dumpAt } from "../../tests/support/node_at.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { openReader } from "../backends/open.ts";
import { restoreBackup } from "../backup/restore.ts";
import { readLayout } from "../format/layout.ts";
import { existsSync } from "../fs/exists.ts";
import { compact, progressBar } from "./compact.ts";
import { upgrade } from "./upgrade.ts";
import { encodeCompactResult, encodeMetadata } from "../wire/packets.ts";
import { startServer } from "../../tests/support/wire_server.ts";
import { withServer } from "../../tests/support/v2_server.ts";
import {
  BufferedOutput,
  makeBackup,
  makeNodeDir,
  recordedChanges,
  removeNodeDir,
} from "../../tests/support/cli_testing.ts";

const CHANGES = recordedChanges(SCENARIOS);

async function run(args: string[]): Promise<{ code: number; output: BufferedOutput }> {
  const output = new BufferedOutput();
  return { code: await compact(args, output), output };
}

Deno.test("compact: folds a stopped node's backup, prints the result, restores the same", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    // Small segments: a compaction deletes sealed ones; the live one keeps the newest change.
    const url = `file://${dir}/backup`;
    createFileBackup(`${dir}/backup`);
    const writer = FileBackend.open(url, `${dir}/backup`, { segmentBytes: 64 * 1024 });
    for (const change of CHANGES) await writer.append(change);
    writer.close();
    const before = restoredDump(url, dir);
    const { code, output } = await run([url, "--json"]);
    assertEquals(code, 0, output.stderr.join("\n"));
    const result = JSON.parse(output.stdout[0]);
    assertEquals(result.base_version, CHANGES.at(-2)!.version);
    assert(result.versions_folded > 400, `${result.versions_folded} folded`);
    assert(result.after.version_count < result.before.version_count);
    assertEquals(Object.keys(result.before), ["backupsize", "version_count"]);
    assertEquals(restoredDump(url, dir), before);
    assertEquals(before, dumpAt(CHANGES, CHANGES.at(-1)!.version));
    const again = await run([url]);
    assertEquals(again.code, 0);
    assertMatch(again.output.stdout[0], /^Compacted in [\d.]+ s: nothing new to fold;/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compact: its progress bar runs from the newest base to the target", () => {
  assertEquals(
    progressBar("restore", 150, 100, 200),
    `compacting [${"#".repeat(15)}${"-".repeat(15)}] 50% rebuilding, version 150 of 200`,
  );
  assertMatch(progressBar("base", 200, 100, 200), /^compacting \[#{30}\] 100% writing the base/);
  assertMatch(progressBar("restore", 5, 0, 0), /100%/);
});

Deno.test("compact: refuses while a plugin writes, a v1 file, and a bad --retain", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const url = await makeBackup(`${dir}/backup`, CHANGES.slice(0, 20));
    const writer = FileBackend.open(url, `${dir}/backup`);
    const held = await run([url]);
    writer.close();
    assertEquals(held.code, 1);
    assertMatch(
      held.output.stderr[0],
      /a running plugin is writing to .*lightning-cli backup-compact/,
    );
    Deno.copyFileSync(PRE_4090_BACKUP, `${dir}/old.dbak`);
    const v1 = await run([`file://${dir}/old.dbak`]);
    assertEquals(v1.code, 1);
    assertMatch(v1.output.stderr[0], /v1 backup of the Python plugin: run "cln-backup upgrade"/);
    assertEquals((await run([url, "--retain", "0"])).code, 2);
    // A directory that is no backup: the one the .dbak is in, a lightning dir.
    const parent = await run([`file://${dir}`]);
    assertEquals(parent.code, 1);
    assertEquals(parent.output.stderr, [
      `Cannot open backup: "${dir}" is a directory, not a backup; it holds "backup" (a ` +
      `cln-backup backup), "old.dbak" (the Python plugin's v1 backup): name the backup ` +
      `itself, file://${dir}/backup`,
    ]);
    Deno.mkdirSync(`${dir}/node`);
    Deno.writeTextFileSync(`${dir}/node/backup.lock`, "{}");
    const node = await run([`file://${dir}/node`]);
    assertEquals(node.code, 1);
    assertMatch(node.output.stderr[0], /^Cannot open backup: ".*\/node" holds no backup segment/);
    assertEquals(Array.from(Deno.readDirSync(`${dir}/node`), (e) => e.name), ["backup.lock"]);
    assertEquals(readLayout(`${dir}/backup`).bases.length, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compact: a node's backup a server holds open is said to be the server's, not a plugin's", async () => {
  const root = Deno.makeTempDirSync();
  try {
    // A root of nodes as `server add-node` makes it: the node's key beside its backup.
    Deno.mkdirSync(`${root}/nodes/n1`, { recursive: true });
    Deno.writeTextFileSync(`${root}/nodes/n1/key`, "00".repeat(32) + "\n", { mode: 0o600 });
    const path = `${root}/nodes/n1/backup`;
    const url = await makeBackup(path, CHANGES.slice(0, 20));
    const server = FileBackend.open(url, path);
    const held = await run([url]);
    server.close();
    assertEquals(held.code, 1);
    assertEquals(held.output.stderr, [
      `Cannot compact backup: "${path}" is node n1's backup on the server of "${root}", which ` +
      `holds it open: run "lightning-cli backup-compact" on that node, which compacts it while ` +
      `the node runs, or stop the server first`,
    ]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("compact: --retain takes any K the plugin's backup-retain-snapshots takes", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const url = await makeBackup(`${dir}/backup`, CHANGES.slice(0, 20));
    const many = await run([url, "--retain", "10000"]);
    assertEquals(many.code, 0, many.output.stderr.join("\n"));
    assertEquals(readLayout(`${dir}/backup`).bases.length, 1);
    assertEquals((await run([url, "--retain", "9007199254740993"])).code, 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A backup of 60 changes at `dir/backup` whose segments the node's user (nobody here) owns. */
async function nobodysBackup(dir: string): Promise<{ path: string; url: string }> {
  const path = `${dir}/backup`;
  const url = await makeBackup(path, CHANGES.slice(0, 60));
  for (const entry of Deno.readDirSync(path)) {
    Deno.chownSync(`${path}/${entry.name}`, 65534, 65534);
  }
  return { path, url };
}

Deno.test("compact run as root leaves its base and live log to the plugin's user, as its logs are", async () => {
  if (Deno.uid() !== 0) return; // Only root gives files away.
  const dir = Deno.makeTempDirSync();
  try {
    const { path, url } = await nobodysBackup(dir);
    // Its logs are mode 0640.
    for (const entry of Deno.readDirSync(path)) {
      if (entry.name.startsWith("log-")) Deno.chmodSync(`${path}/${entry.name}`, 0o640);
    }
    const output = new BufferedOutput();
    const code = await compact([url], output);
    assertEquals(code, 0, output.stderr.join("\n"));
    const layout = readLayout(path);
    assertEquals(layout.bases.length, 1);
    for (const { path: segment } of [...layout.bases, ...layout.logs]) {
      const { uid, gid, mode } = Deno.statSync(segment);
      assertEquals([uid, gid, mode! & 0o777], [65534, 65534, 0o640], segment);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compact run as root refuses a backup directory another user can write to", async () => {
  if (Deno.uid() !== 0) return; // Only root's compaction hands that user its powers.
  const dir = Deno.makeTempDirSync();
  try {
    const { path, url } = await nobodysBackup(dir);
    // That user owns the backup directory too, as the plugin needs.
    Deno.chownSync(path, 65534, 65534);
    Deno.writeTextFileSync(`${dir}/shadow`, "root:x:0:0", { mode: 0o600 });
    const before = readLayout(path);
    // That user owns the names in it: once the restored database is linked into the scratch
    // directory, it puts a symlink there, and the base is read (and truncated) through it.
    const output = new class extends BufferedOutput {
      progress = () => {
        for (const entry of Deno.readDirSync(path)) {
          const database = `${path}/${entry.name}/lightningd.sqlite3`;
          if (!entry.name.startsWith("compacting-") || !existsSync(database)) continue;
          Deno.removeSync(database);
          Deno.symlinkSync(`${dir}/shadow`, database);
        }
      };
    }();
    const code = await compact([url], output);
    assertEquals(code, 1);
    assertMatch(output.stderr.join("\n"), /writable by uid 65534.*run compact as that user/);
    assertEquals(Deno.readTextFileSync(`${dir}/shadow`), "root:x:0:0");
    assertEquals(readLayout(path), before, "nothing was compacted");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compact run as root keeps its scratch directory its own, where the logs' owner swaps nothing", async () => {
  if (Deno.uid() !== 0) return; // Only root gives files away.
  const dir = Deno.makeTempDirSync();
  try {
    // A directory root alone changes, open to others' reads, holding logs of nobody's.
    Deno.chmodSync(dir, 0o755);
    const { path, url } = await nobodysBackup(dir);
    Deno.chmodSync(path, 0o755);
    Deno.writeTextFileSync(`${dir}/shadow`, "root:x:0:0", { mode: 0o600 });
    const before = readLayout(path);
    // Nobody swaps the restored database for a symlink, where it can: the base is read (and
    // truncated) through it.
    const output = new class extends BufferedOutput {
      progress = () => {
        for (const entry of Deno.readDirSync(path)) {
          if (!entry.name.startsWith("compacting-")) continue;
          const database = `${path}/${entry.name}/lightningd.sqlite3`;
          const swap = `[ -f ${database} ] && rm ${database} && ln -s ${dir}/shadow ${database}`;
          // In `/`: nobody may not reach the test's own working directory (a private checkout).
          new Deno.Command("sh", { args: ["-c", swap], cwd: "/", uid: 65534, gid: 65534 })
            .outputSync();
        }
      };
    }();
    const code = await compact([url], output);
    assertEquals(code, 0, output.stderr.join("\n"));
    assertEquals(Deno.readTextFileSync(`${dir}/shadow`), "root:x:0:0");
    assertEquals(readLayout(path).bases.length, before.bases.length + 1);
    assertEquals(restoredDump(url, dir), dumpAt(CHANGES, CHANGES[59].version));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compact: a damaged base is said to be damaged, not a want of room", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/backup`;
    const url = await makeBackup(path, CHANGES.slice(0, 100));
    assertEquals((await run([url])).code, 0);
    const writer = FileBackend.open(url, path);
    for (const change of CHANGES.slice(100, 150)) await writer.append(change);
    writer.close();
    // A flipped byte in the base's first part: the writer's open reads only its end.
    const base = readLayout(path).bases[0].path;
    const bytes = Deno.readFileSync(base);
    bytes[200] ^= 0xff;
    Deno.writeFileSync(base, bytes);
    const { code, output } = await run([url]);
    assertEquals(code, 1);
    const message = output.stderr.join("\n");
    assertMatch(
      message,
      /^Cannot compact backup: .*\(building the base at version \d+ in ".*"\); the backup is unchanged$/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compact: a server's backup keeps one base: --retain above 1 is refused, not ignored", async () => {
  // Refused before any connection: no server listens there.
  const refused = await run(["socket:127.0.0.1:9", "--retain", "3"]);
  assertEquals(refused.code, 2);
  assertMatch(refused.output.stderr[0], /^Usage error: --retain 3: a backup on a server keeps one/);
  assertMatch(refused.output.stderr[0], /leave --retain out/);
});

Deno.test("compact: a Python plugin's backup compacts once upgraded", async () => {
  const dir = makeNodeDir();
  try {
    const base = Deno.realPathSync(`${dir}/..`);
    const v1Url = `file://${base}/backup.dbak`;
    Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: v1Url }));
    restoreBackup(openReader(v1Url), dir);
    const upgraded = new BufferedOutput();
    assertEquals(await upgrade(["--lightning-dir", dir], upgraded), 0, upgraded.stderr.join());
    const url = `file://${base}/backup.clnb`;
    const before = restoredDump(url, base);
    const { code, output } = await run([url]);
    assertEquals(code, 0, output.stderr.join("\n"));
    assertEquals(restoredDump(url, base), before);
    assertEquals(restoredDump(url, base), restoredDump(v1Url, base));
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("compact: a server's backup over wire v1, without a credential, is compacted by the server", async () => {
  const dir = Deno.makeTempDirSync();
  const served = `${dir}/served`;
  createFileBackup(served);
  const writer = FileBackend.open(`file://${served}`, served, { segmentBytes: 64 * 1024 });
  for (const change of CHANGES) await writer.append(change);
  writer.close();
  // Ours as the Python plugin's users run it: --allow-v1, no credential.
  const { server, url } = startServer(served);
  try {
    const before = restoredDump(`file://${served}`, dir);
    const { code, output } = await run([url]);
    assertEquals(code, 0, output.stderr.join("\n"));
    assertMatch(
      output.stdout[0],
      new RegExp(
        `^Compacted in [\\d.]+ s: \\d{3} change\\(s\\) folded into a base at version ` +
          `${CHANGES.at(-2)!.version};`,
      ),
    );
    assertEquals(restoredDump(`file://${served}`, dir), before);
    assert(readLayout(served).bases.length > 0, "the server wrote a base");
  } finally {
    await server.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compact: a Python server's answer (before and after only) is described by what it says", async () => {
  // The Python backup-cli server: METADATA to REQ_METADATA, then COMPACT_RES to COMPACT.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(5));
    await conn.write(encodeMetadata({ version: 7, prevVersion: 6, versionCount: 5 }));
    await conn.read(new Uint8Array(5));
    await conn.write(encodeCompactResult({
      before: { backupsize: 1000, version_count: 5 },
      after: { backupsize: 400, version_count: 2 },
    }));
    await conn.read(new Uint8Array(1)).catch(() => null);
    conn.close();
  })();
  try {
    const { code, output } = await run([`socket:127.0.0.1:${listener.addr.port}`]);
    assertEquals(code, 0, output.stderr.join("\n"));
    assertMatch(
      output.stdout[0],
      /^Compacted in [\d.]+ s: 3 change\(s\) folded; 1000 -> 400 bytes \(600 freed\), 5 -> 2 versions held/,
    );
  } finally {
    listener.close();
    await serving;
  }
});

Deno.test("compact: a server that takes only nodes that prove their key asks for the credential", async () => {
  await withServer(async ({ url }) => {
    const { code, output } = await run([url]);
    assertEquals(code, 1);
    assertMatch(
      output.stderr[0],
      /^Cannot compact backup: the server at 127\.0\.0\.1:\d+ refused wire v1 \(NACK\): it serves nodes that prove their key: set CLN_BACKUP_CREDENTIAL to the node's backup\.credential file \(made by "server add-node"\)$/,
    );
  });
});
