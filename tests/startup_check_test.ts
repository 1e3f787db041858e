/**
 * The check the plugin makes at start, before lightningd's first `db_write`: one line in
 * lightningd's log with the backup's state, or, for a damaged backup, one line saying what
 * to do, and every change refused, so lightningd stops before it commits anything.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { loadFixture, PRE_4090_BACKUP, type Scenario } from "./support/fixtures.ts";
import { init } from "../lib/cli/init.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { pathToFileURL } from "node:url";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { advised, runAsPrinted } from "./support/as_printed.ts";

interface Node {
  dir: string;
  url: string;
  backupDir: string;
  launcher: string;
}

async function initNode(): Promise<Node> {
  const dir = makeNodeDir();
  const backupDir = `${Deno.realPathSync(`${dir}/..`)}/backup`;
  const url = `file://${backupDir}`;
  const output = new BufferedOutput();
  assertEquals(await init(["--lightning-dir", dir, url], output), 0, output.stderr.join("\n"));
  return { dir, url, backupDir, launcher: `${dir}/cln-backup-plugin` };
}

/** Runs one recorded lightningd session through the launcher; returns the fake node. */
async function session(node: Node, scenario: Scenario): Promise<FakeLightningd> {
  const fixture = loadFixture(scenario);
  const lightningd = FakeLightningd.spawn({
    lightningDir: node.dir,
    command: [node.launcher],
    chunking: { kind: "sizes", sizes: fixture.chunks },
  });
  await lightningd.replay(fixture.raw);
  await lightningd.close();
  return lightningd;
}

function sizes(dir: string): Map<string, number> {
  return new Map(
    [...Deno.readDirSync(dir)].map((e) => [e.name, Deno.statSync(`${dir}/${e.name}`).size]),
  );
}

function dbWriteAnswers(lightningd: FakeLightningd): unknown[] {
  return lightningd.received
    .filter((m) => String(m.id).startsWith("cln:db_write"))
    .map((m) => (m.result as { result?: string }).result);
}

Deno.test("at start the plugin logs the backup's state in one line, before the first db_write", async () => {
  const node = await initNode();
  try {
    const first = await session(node, "fresh-start");
    assertEquals(first.aborted, undefined);
    const restart = await session(node, "restart");
    assertEquals(restart.aborted, undefined);
    const lines = restart.logs.filter((l) => l.message.includes("checked at start"));
    assertEquals(lines.length, 1);
    assertEquals(lines[0].level, "info");
    assertMatch(
      lines[0].message,
      new RegExp(
        `^Backup "${node.url}" opened and checked at start: version 11 \\(its last change ` +
          `can be dropped back to 10\\), \\d+ records, \\d+ bytes, its tail intact$`,
      ),
    );
    // It comes first: before any answer to lightningd.
    const at = restart.received.findIndex((m) =>
      (m.params as { message?: string } | undefined)?.message === lines[0].message
    );
    assertEquals(at, 0);
    assertEquals(restart.logs.filter((l) => l.level === "broken"), []);
  } finally {
    removeNodeDir(node.dir);
  }
});

Deno.test("a flipped byte in the middle of the live log: the plugin refuses at start", async () => {
  const node = await initNode();
  try {
    assertEquals((await session(node, "fresh-start")).aborted, undefined);
    const before = sizes(node.backupDir);
    assertEquals((await session(node, "restart")).aborted, undefined);
    // The live log is the file the plugin appended to during the restart.
    const grown = [...sizes(node.backupDir)].filter(([name, size]) =>
      size > (before.get(name) ?? 0)
    );
    assertEquals(grown.length, 1, JSON.stringify(grown));
    const [name, size] = grown[0];
    const live = `${node.backupDir}/${name}`;
    const bytes = Deno.readFileSync(live);
    bytes[Math.floor(size / 2)] ^= 0x01;
    Deno.writeFileSync(live, bytes);

    const fixture = loadFixture("activity");
    const lightningd = FakeLightningd.spawn({
      lightningDir: node.dir,
      command: [node.launcher],
      chunking: { kind: "sizes", sizes: fixture.chunks },
    });
    const versionBefore = lightningd.dataVersion();
    assertEquals(await lightningd.replay(fixture.raw), "aborted");
    assertEquals(lightningd.dataVersion(), versionBefore, "the node committed nothing");
    await lightningd.close();

    // The hook stays registered, so lightningd asks, and no change is acknowledged.
    assert(lightningd.received.some((m) => String(m.id).startsWith("cln:getmanifest") && m.result));
    const answers = dbWriteAnswers(lightningd);
    assertEquals(answers.length, 1, "lightningd stops at the first refused change");
    assert(answers.every((answer) => answer !== "continue"));
    // One line in lightningd's log, saying what happened and what to do.
    assertEquals(lightningd.logs.length, 1, JSON.stringify(lightningd.logs));
    assertEquals(lightningd.logs[0].level, "broken");
    assertMatch(
      lightningd.logs[0].message,
      new RegExp(
        `^Cannot start backup: "${node.url}" is damaged: .* at offset \\d+ of "${live}", ` +
          `which no crash explains; lightningd must not run without its backup, so every ` +
          `database write is refused: with lightningd stopped, move the backup ` +
          `"${node.backupDir}" and "${node.dir}/backup.lock" aside, then run "cln-backup init ` +
          `--lightning-dir '${node.dir}' '${node.url}'" to start a new backup from the current ` +
          `database, then start lightningd$`,
      ),
    );
    assertEquals(
      (lightningd.received.find((m) => String(m.id).startsWith("cln:db_write"))?.result as {
        message?: string;
      }).message,
      lightningd.logs[0].message,
    );
  } finally {
    removeNodeDir(node.dir);
  }
});

Deno.test("a backup of format 2 (a development version's) is refused at start with the whole init for this node", async () => {
  const dir = makeNodeDir("fresh-start");
  try {
    const backupDir = `${Deno.realPathSync(`${dir}/..`)}/backup`;
    const url = `file://${backupDir}`;
    assertEquals(await init(["--lightning-dir", dir, url], new BufferedOutput()), 0);
    // Each of its files' headers says format 2.
    for (const { name } of Deno.readDirSync(backupDir)) {
      const bytes = Deno.readFileSync(`${backupDir}/${name}`);
      new DataView(bytes.buffer).setUint32(8, 2);
      Deno.writeFileSync(`${backupDir}/${name}`, bytes);
    }
    const lightningd = FakeLightningd.spawn({ lightningDir: dir });
    await lightningd.getmanifest();
    assertEquals(await lightningd.transaction(["UPDATE vars SET intval = 1 WHERE 0"]), "aborted");
    await lightningd.close();
    const refusal = lightningd.logs.find((l) => l.level === "broken")?.message ?? "";
    const real = Deno.realPathSync(dir);
    assertMatch(
      refusal,
      new RegExp(
        `^Cannot start backup: "${url}" is not one this version appends to: ` +
          `"${backupDir}/[^"]+" has format 2, written by a development ` +
          `version of cln-backup .*: with lightningd stopped, move the backup "${backupDir}" ` +
          `and "${real}/backup\\.lock" aside, then run "cln-backup init --lightning-dir ` +
          `'${real}' '${url}'" to start a new backup from the current database, then start ` +
          `lightningd$`,
      ),
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("a backup.key holding no key is refused at start with the whole rekey that writes it", async () => {
  const node = await initNode();
  try {
    Deno.writeTextFileSync(`${node.dir}/backup.key`, "{}\n", { mode: 0o600 });
    const lightningd = FakeLightningd.spawn({ lightningDir: node.dir, command: [node.launcher] });
    await lightningd.getmanifest();
    await lightningd.close();
    const real = Deno.realPathSync(node.dir);
    assertEquals(
      lightningd.logs.find((l) => l.level === "broken")?.message,
      `Cannot start backup: "${real}/backup.key" holds no cln-backup data key: write it ` +
        `again with "cln-backup rekey '${node.url}' --key-file '${real}'"`,
    );
  } finally {
    removeNodeDir(node.dir);
  }
});

Deno.test("a backup directory with no segment (a disk not mounted, files deleted) is refused at start: mount it, or the whole init that starts a new backup of the intact database", async () => {
  const dir = makeNodeDir("restart");
  try {
    const backupDir = `${Deno.realPathSync(`${dir}/..`)}/backup`;
    Deno.mkdirSync(backupDir);
    const url = `file://${backupDir}`;
    writeLockFile(dir, { backend_url: url });
    const lightningd = FakeLightningd.spawn({ lightningDir: dir });
    await lightningd.getmanifest();
    assertEquals(await lightningd.transaction(["UPDATE vars SET intval = 1 WHERE 0"]), "aborted");
    await lightningd.close();
    const real = Deno.realPathSync(dir);
    const refusal = lightningd.logs.find((l) => l.level === "broken")?.message ?? "";
    assertEquals(
      refusal,
      `Cannot start backup: "${url}" holds no backup segment (no base-*.clnb or log-*.clnb ` +
        `file): if a disk should be mounted at "${backupDir}", mount it, then start ` +
        `lightningd; if it held a backup, its files were deleted, and lightningd must not run ` +
        `without its backup: with lightningd stopped, move the backup "${backupDir}" and ` +
        `"${real}/backup.lock" aside, then run "cln-backup init --lightning-dir '${real}' ` +
        `'${url}'" to start a new backup from the current database, then start lightningd`,
    );
    Deno.renameSync(backupDir, `${backupDir}-aside`);
    Deno.renameSync(`${dir}/backup.lock`, `${dir}/backup.lock-aside`);
    const made = await runAsPrinted(advised(refusal), dir);
    assertEquals(made.code, 0, made.out);
    const again = FakeLightningd.spawn({ lightningDir: dir });
    await again.getmanifest();
    assertEquals(await again.transaction(["UPDATE vars SET intval = 1 WHERE 0"]), "committed");
    await again.close();
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("backup.lock naming a server's root is refused at start with the whole list-nodes that names its backups", async () => {
  const dir = makeNodeDir("restart");
  try {
    const root = `${Deno.realPathSync(`${dir}/..`)}/server root`;
    Deno.mkdirSync(`${root}/nodes`, { recursive: true });
    writeLockFile(dir, { backend_url: pathToFileURL(root).href });
    const lightningd = FakeLightningd.spawn({ lightningDir: dir });
    await lightningd.getmanifest();
    assertEquals(await lightningd.transaction(["UPDATE vars SET intval = 1 WHERE 0"]), "aborted");
    await lightningd.close();
    const refusal = lightningd.logs.find((l) => l.level === "broken")?.message ?? "";
    assertMatch(refusal, /^Cannot open backup: ".*" is a backup server's root, not a backup: /);
    assert(
      refusal.includes(`("cln-backup server list-nodes '${root}'" shows them)`),
      refusal,
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("a v1 .dbak with a socket: async copy gets the same refusal, loading the copy's code", async () => {
  const dir = makeNodeDir("restart");
  try {
    const v1 = `${Deno.realPathSync(`${dir}/..`)}/backup.dbak`;
    Deno.copyFileSync(PRE_4090_BACKUP, v1);
    Deno.writeTextFileSync(
      `${dir}/backup.lock`,
      JSON.stringify({ backend_url: `file://${v1}`, async_urls: ["socket:127.0.0.1:9"] }),
    );
    const lightningd = FakeLightningd.spawn({ lightningDir: dir });
    await lightningd.getmanifest();
    await lightningd.init();
    assertEquals(await lightningd.transaction(["UPDATE vars SET intval = 1 WHERE 0"]), "aborted");
    await lightningd.close();
    const refusal = lightningd.logs.find((l) => l.level === "broken")?.message ?? "";
    assert(refusal.startsWith(`Cannot open backup: "${v1}" is a v1 backup`), refusal);
  } finally {
    removeNodeDir(dir);
  }
});

for (
  const [what, damage, cause] of [
    [
      "lost a file",
      (copy: string) => Deno.removeSync(`${copy}/lib/backends/socket/backend.ts`),
      (copy: string) => `Module not found "file://${copy}/lib/backends/socket/backend.ts".`,
    ],
    [
      "has a file of another version (an update mid-way)",
      (copy: string) => {
        const path = `${copy}/lib/backends/socket/credential.ts`;
        const text = Deno.readTextFileSync(path);
        Deno.writeTextFileSync(path, text.replace("function credentialIn(", "function renamed("));
      },
      (copy: string) => {
        const importer = `${copy}/lib/plugin/remote_destinations.ts`;
        const lines = Deno.readTextFileSync(importer).split("\n");
        const line = lines.findIndex((text) => text.startsWith("import { credentialIn }")) + 1;
        return `The requested module '../backends/socket/credential.ts' does not provide an ` +
          `export named 'credentialIn' at file://${importer}:${line}:10`;
      },
    ],
  ] as const
) {
  Deno.test(`a copy of the plugin that ${what} of its socket: code says so in one line and refuses every write`, async () => {
    const dir = makeNodeDir("restart");
    const copy = Deno.makeTempDirSync({ prefix: "plugin-copy-" });
    try {
      // Its remote code is loaded at start only when backup.lock names a socket: or s3://
      // destination.
      const root = new URL("../", import.meta.url).pathname;
      Deno.copyFileSync(`${root}/plugin.ts`, `${copy}/plugin.ts`);
      await new Deno.Command("cp", { args: ["-R", `${root}/lib`, `${copy}/lib`] }).output();
      damage(copy);
      Deno.writeTextFileSync(
        `${dir}/backup.lock`,
        JSON.stringify({ backend_url: "socket:127.0.0.1:9" }),
      );
      const lightningd = FakeLightningd.spawn({
        lightningDir: dir,
        command: [Deno.execPath(), "run", "-A", "--no-config", "--no-lock", `${copy}/plugin.ts`],
      });
      await lightningd.getmanifest();
      await lightningd.init();
      assertEquals(await lightningd.transaction(["UPDATE vars SET intval = 1 WHERE 0"]), "aborted");
      await lightningd.close();
      const refusal = lightningd.logs.find((l) => l.level === "broken")?.message ?? "";
      assertEquals(
        refusal,
        `Cannot start backup: the plugin's code for socket: and s3:// backups cannot be ` +
          `loaded (${cause(copy)}): install cln-backup again, each file readable by ` +
          `lightningd's user (a compiled plugin: build it again with "deno task ` +
          `compile:plugin -- --lightning-dir '${Deno.realPathSync(dir)}'"), then start ` +
          `lightningd`,
      );
    } finally {
      removeNodeDir(dir);
      Deno.removeSync(copy, { recursive: true });
    }
  });
}

Deno.test("on the Python plugin's backup.lock (a v1 .dbak) the plugin says which command converts it", async () => {
  const dir = makeNodeDir("restart");
  try {
    const v1 = `${Deno.realPathSync(`${dir}/..`)}/backup.dbak`;
    Deno.copyFileSync(PRE_4090_BACKUP, v1);
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: `file://${v1}` }));
    const lightningd = FakeLightningd.spawn({ lightningDir: dir });
    await lightningd.getmanifest();
    await lightningd.init();
    const before = lightningd.dataVersion();
    assertEquals(await lightningd.transaction(["UPDATE vars SET intval = 1 WHERE 0"]), "aborted");
    assertEquals(lightningd.dataVersion(), before, "the node committed nothing");
    await lightningd.close();
    const refusal = lightningd.logs.find((l) => l.level === "broken");
    // The command as the operator runs it, with this node's directory, not a placeholder.
    assertEquals(
      refusal?.message,
      `Cannot open backup: "${v1}" is a v1 backup of the Python plugin, which this plugin ` +
        `does not append to: with lightningd stopped, convert it once, keeping every version, ` +
        `with "cln-backup upgrade --lightning-dir '${
          Deno.realPathSync(dir)
        }'", then load the plugin with the important-plugin= line it prints and start ` +
        `lightningd`,
    );
  } finally {
    removeNodeDir(dir);
  }
});
