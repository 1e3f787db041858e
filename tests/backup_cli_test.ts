/**
 * `./backup-cli` as an operator coming from the Python plugin runs it: the Python CLI's
 * commands and argument forms, from a checkout whose only Deno is in node_modules and a
 * PATH of /usr/bin:/bin, each command under the permissions lib/cli/permissions.ts grants.
 */
import { placeDeno } from "./support/installed_deno.ts";
import { homelessEnv } from "./support/backup_cli.ts";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { loadFixture, PRE_4090_BACKUP } from "./support/fixtures.ts";
import { connectReader, openBackend, openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { makeBackup, makeNodeDir, recordedChanges, removeNodeDir } from "./support/cli_testing.ts";
import { COMMANDS } from "../lib/cli/main.ts";
import { RawClient } from "./support/wire_server.ts";
import { bumpStatement } from "./support/statements.ts";
import {
  decodeCompactResult,
  encodeChange,
  encodePacket,
  encodeSnapshot,
  PacketType,
} from "../lib/wire/packets.ts";
import { DatabaseSync } from "node:sqlite";

const PROJECT = new URL("..", import.meta.url).pathname;
const SYSTEM_PATH = "/usr/bin:/bin";

interface Run {
  code: number;
  stdout: string[];
  stderr: string[];
}

/**
 * A checkout of this project in a temporary directory: backup-cli copied (it finds its
 * checkout through symlinks to itself), the code linked, and Deno, when `withDeno`, only at
 * node_modules/deno/deno, where `npm install deno` puts it.
 */
function checkout(withDeno = true): string {
  const root = Deno.makeTempDirSync({ prefix: "cln-backup-checkout-" });
  Deno.copyFileSync(`${PROJECT}backup-cli`, `${root}/backup-cli`);
  for (const name of ["cli.ts", "plugin.ts", "lib", "scripts"]) {
    Deno.symlinkSync(`${PROJECT}${name}`, `${root}/${name}`);
  }
  if (withDeno) {
    Deno.mkdirSync(`${root}/node_modules/deno`, { recursive: true });
    placeDeno(`${root}/node_modules/deno/deno`);
  }
  return root;
}

let shared: string | undefined;

/**
 * One {@linkcode checkout} for the tests that leave theirs as they found it, removed when this
 * process ends: Deno compiles a checkout's code once per path and keeps what it compiled in
 * its cache, so a checkout each cost every run 4 MB of that cache and the CPU to compile.
 */
function sharedCheckout(): string {
  if (shared === undefined) {
    const root = checkout();
    globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
    shared = root;
  }
  return shared;
}

async function backupCli(
  program: string,
  args: string[],
  options: { cwd?: string; path?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const { code, stdout, stderr } = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    clearEnv: true,
    env: { ...await homelessEnv(options.path ?? SYSTEM_PATH), ...options.env },
  }).output();
  const lines = (bytes: Uint8Array) => new TextDecoder().decode(bytes).split("\n").filter(Boolean);
  return { code, stdout: lines(stdout), stderr: lines(stderr) };
}

/** The pid of a process that has ended. */
async function endedPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("backup-cli: each init form, on an empty network dir and on a recorded node", async () => {
  const root = sharedCheckout();
  const cli = `${root}/backup-cli`;
  for (const database of [undefined, "fresh-start"] as const) {
    const forms: [string, (dir: string, url: string) => string[]][] = [
      ["DIR <url>", (dir, url) => ["init", dir, url]],
      ["--lightning-dir DIR <url>", (dir, url) => ["init", "--lightning-dir", dir, url]],
      ["<url> --lightning-dir DIR", (dir, url) => ["init", url, "--lightning-dir", dir]],
    ];
    for (const [form, args] of forms) {
      const dir = makeNodeDir(database);
      const base = Deno.realPathSync(`${dir}/..`);
      const url = `file://${base}/backups/node`;
      // Relative to where it runs, as an operator types it.
      const run = await backupCli(cli, args("regtest", url), { cwd: base });
      const what = `${form} on ${database ?? "an empty dir"}`;
      assertEquals(run.code, 0, `${what}: ${run.stderr.join("\n")}`);
      // The backup is beside the node, on its disk: true, and said (once, on stderr).
      assertEquals(run.stderr.length, 1, what);
      assertMatch(
        run.stderr[0],
        new RegExp(
          `^Warning: the backup "${base}/backups/node" is on the same filesystem as .*, or ` +
            `add a copy .* with "${cli} mirror <url> --lightning-dir '${dir}'"$`,
        ),
        what,
      );
      assertEquals(run.stdout.at(-1), `important-plugin=${dir}/cln-backup-plugin`, what);
      assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)), { backend_url: url });
      const backend = openBackend(url);
      assertEquals(backend.state().version, database ? 11 : 0, what);
      backend.close();
      if (database) {
        restoreBackup(openReader(url), `${base}/restored.sqlite3`);
        assertEquals(
          dumpDatabase(`${base}/restored.sqlite3`),
          dumpDatabase(loadFixture(database).database),
          what,
        );
      }
      removeNodeDir(dir);
    }

    // <url> alone: an empty backup, and the directory it runs in is left alone.
    const dir = makeNodeDir(database);
    const before = listDir(dir);
    const url = `file://${Deno.realPathSync(`${dir}/..`)}/storage`;
    const alone = await backupCli(cli, ["init", url], { cwd: dir });
    assertEquals(alone.code, 0, alone.stderr.join("\n"));
    assertMatch(
      alone.stdout.join("\n"),
      /^Created the empty backup .* at version 0, and no backup.lock/,
    );
    assertEquals(listDir(dir), before);
    const backend = openBackend(url);
    assertEquals(backend.state().version, 0);
    backend.close();
    removeNodeDir(dir);
  }
});

Deno.test("backup-cli: init and mirror reach a database a wallet= line keeps on another disk, in WAL mode, through a config included from there", async () => {
  const root = sharedCheckout();
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  // Outside the lightning dirs, which init may read anyway.
  const disk = Deno.makeTempDirSync({ prefix: "cln-backup-disk-" });
  try {
    const database = `${disk}/node.sqlite3`;
    Deno.renameSync(`${dir}/lightningd.sqlite3`, database);
    const db = new DatabaseSync(database);
    db.exec("PRAGMA journal_mode = WAL");
    db.close();
    Deno.writeTextFileSync(`${disk}/wallet.conf`, `wallet=sqlite3://${database}\n`);
    Deno.writeTextFileSync(`${dir}/config`, `include ${disk}/wallet.conf\n`);
    const url = `file://${base}/backups/node`;
    const init = await backupCli(`${root}/backup-cli`, ["init", "--lightning-dir", dir, url]);
    assertEquals(init.code, 0, init.stderr.join("\n"));
    assertMatch(init.stdout[0], new RegExp(`from a snapshot of "${database}" at version 11$`));
    const second = `file://${base}/backups/second`;
    const mirror = await backupCli(`${root}/backup-cli`, [
      "mirror",
      second,
      "--lightning-dir",
      dir,
    ]);
    assertEquals(mirror.code, 0, mirror.stderr.join("\n"));
    for (const [n, copy] of [url, second].entries()) {
      restoreBackup(openReader(copy), `${base}/restored-${n}.sqlite3`);
      assertEquals(
        dumpDatabase(`${base}/restored-${n}.sqlite3`),
        dumpDatabase(loadFixture("fresh-start").database),
      );
    }
  } finally {
    removeNodeDir(dir);
    Deno.removeSync(disk, { recursive: true });
  }
});

Deno.test("backup-cli: init warns of a backup on the disk a wallet= line will keep a new node's database on", async () => {
  const root = sharedCheckout();
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  // Outside the lightning dirs, which init may read anyway; the same disk.
  const disk = Deno.makeTempDirSync({ prefix: "cln-backup-disk-" });
  try {
    Deno.writeTextFileSync(`${dir}/config`, `wallet=sqlite3://${disk}/node.sqlite3\n`);
    const url = `file://${base}/backups/node`;
    const init = await backupCli(`${root}/backup-cli`, ["init", "--lightning-dir", dir, url]);
    assertEquals(init.code, 0, init.stderr.join("\n"));
    assertEquals(init.stderr.length, 1, init.stdout.join("\n"));
    assertMatch(
      init.stderr[0],
      new RegExp(
        `^Warning: the backup "${base}/backups/node" is on the same filesystem as "${disk}", ` +
          `where the node's database will be: `,
      ),
    );
  } finally {
    removeNodeDir(dir);
    Deno.removeSync(disk, { recursive: true });
  }
});

Deno.test("backup-cli: mirror warns of a set on the database's disk whose other copies it does not write", async () => {
  const root = sharedCheckout();
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  // The first two outside the lightning dirs, which mirror may read anyway; the same disk.
  const disk = Deno.makeTempDirSync({ prefix: "cln-backup-disk-" });
  try {
    const cli = `${root}/backup-cli`;
    const [url, copy] = [`file://${disk}/node`, `file://${disk}/copy`];
    const init = await backupCli(cli, ["init", "--lightning-dir", dir, url, "--mirror", copy]);
    assertEquals(init.code, 0, init.stderr.join("\n"));
    const second = `${base}/second`;
    const mirror = await backupCli(cli, ["mirror", `file://${second}`, "--lightning-dir", dir]);
    assertEquals(mirror.code, 0, mirror.stderr.join("\n"));
    assertEquals(mirror.stderr.length, 1, mirror.stdout.join("\n"));
    assertMatch(
      mirror.stderr[0],
      new RegExp(
        `^Warning: the backup "${disk}/node" and its copies "${disk}/copy", "${second}" are ` +
          `on the same filesystem as the node's database`,
      ),
    );
  } finally {
    removeNodeDir(dir);
    Deno.removeSync(disk, { recursive: true });
  }
});

Deno.test("backup-cli: ambiguous init calls are usage errors that show both forms", async () => {
  const root = sharedCheckout();
  const dir = makeNodeDir();
  try {
    const usage = (wrong: string) =>
      `Usage error: "init" got ${wrong}: use "init --lightning-dir <dir> <url>" or ` +
      `"init <lightning-dir> <url>": see "${root}/backup-cli init --help"`;
    const calls: [string[], string][] = [
      [["file:///a", "file:///b"], 'two URLs, "file:///a" and "file:///b"'],
      [[dir, "backup"], `two directories, "${dir}" and "backup"`],
      [
        ["--lightning-dir", dir, dir, "file:///b"],
        `two lightning dirs, "${dir}" and --lightning-dir "${dir}"`,
      ],
      [[dir], "no <url> (an argument such as file:///abs/path)"],
    ];
    for (const [args, wrong] of calls) {
      const run = await backupCli(`${root}/backup-cli`, ["init", ...args]);
      assertEquals(run, { code: 2, stdout: [], stderr: [usage(wrong)] });
    }
    assertEquals(listDir(dir), []);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("backup-cli: restore into a file and into a directory equals the node's database", async () => {
  const root = sharedCheckout();
  const base = Deno.makeTempDirSync();
  try {
    const url = await makeBackup(`${base}/backup`, recordedChanges(["fresh-start", "restart"]));
    const expected = dumpDatabase(loadFixture("restart").database);
    Deno.mkdirSync(`${base}/bitcoin`);
    const targets = [
      ["restored.sqlite3", `${base}/restored.sqlite3`],
      [`${base}/other.sqlite3`, `${base}/other.sqlite3`],
      ["bitcoin", `${base}/bitcoin/lightningd.sqlite3`],
    ];
    for (const [target, path] of targets) {
      const run = await backupCli(`${root}/backup-cli`, ["restore", url, target], { cwd: base });
      assertEquals(run.code, 0, run.stderr.join("\n"));
      assertMatch(run.stdout[0], new RegExp(`^Restored "${path}" at version 15: `));
      assertEquals(dumpDatabase(path), expected);
    }
    // It never overwrites: one line, exit 1, the database as it was.
    const again = await backupCli(`${root}/backup-cli`, ["restore", url, "bitcoin"], { cwd: base });
    assertEquals(again.code, 1);
    assertEquals(again.stderr.length, 1);
    assertMatch(again.stderr[0], /^Cannot restore backup: database already exists at/);
    assertEquals(dumpDatabase(`${base}/bitcoin/lightningd.sqlite3`), expected);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("backup-cli: compact folds a stopped node's backup under its permissions", async () => {
  const root = sharedCheckout();
  const base = Deno.makeTempDirSync();
  try {
    const url = await makeBackup(`${base}/backup`, recordedChanges(["fresh-start", "restart"]));
    const run = await backupCli(`${root}/backup-cli`, ["compact", url, "--json"]);
    assertEquals({ code: run.code, stderr: run.stderr }, { code: 0, stderr: [] });
    assertEquals(JSON.parse(run.stdout.join("\n")).base_version, 14);
    const verify = await backupCli(`${root}/backup-cli`, ["verify", url]);
    assertEquals(verify.code, 0, verify.stderr.join("\n"));
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("backup-cli: status, verify, upgrade and doctor run under their permissions", async () => {
  const root = sharedCheckout();
  const cli = `${root}/backup-cli`;
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    // The Python plugin's set-up: a v1 .dbak named by backup.lock, the node at its version.
    const v1Url = `file://${base}/backup.dbak`;
    Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: v1Url }));
    restoreBackup(openReader(v1Url), dir);

    // init over it, the Python README's way (its file named file.bkp), names upgrade instead.
    const bkpUrl = `file://${base}/location/file.bkp`;
    Deno.mkdirSync(`${base}/location`);
    Deno.copyFileSync(PRE_4090_BACKUP, `${base}/location/file.bkp`);
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: bkpUrl }));
    const init = await backupCli(cli, ["init", "--lightning-dir", dir, `file://${base}/new`]);
    assertEquals(init.code, 1);
    assertEquals(init.stderr, [
      `Cannot init backup: "${dir}/backup.lock" already exists (it points to ${bkpUrl}): this ` +
      `node has a backup already: it is the Python plugin's v1 backup: convert it with ` +
      `"${cli} upgrade --lightning-dir '${dir}'" instead (it writes the launcher too); to ` +
      `start over, move backup.lock aside first`,
    ]);
    Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: v1Url }));

    const upgrade = await backupCli(cli, ["upgrade", "--lightning-dir", dir]);
    assertEquals(upgrade.code, 0, upgrade.stderr.join("\n"));
    assertEquals(upgrade.stdout.at(-1), `important-plugin=${dir}/cln-backup-plugin`);
    const url = `file://${base}/backup.clnb`;

    const status = await backupCli(cli, ["status", url, "--json"]);
    assertEquals(status.code, 0, status.stderr.join("\n"));
    const described = JSON.parse(status.stdout.join("\n"));
    // The same CLI as deno task's: the same answer.
    const direct = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${PROJECT}cli.ts`, "status", url, "--json"],
    }).output();
    assertEquals(described, JSON.parse(new TextDecoder().decode(direct.stdout)));

    // A verify killed midway left its restored copy in the temporary directory: the next one
    // removes it, without the right to read /proc (its lock tells that no one holds it).
    Deno.mkdirSync(`${base}/tmp/cln-backup-verify-${await endedPid()}-5e1f0a9c3b7d2e41`, {
      recursive: true,
    });
    const verify = await backupCli(cli, ["verify", url], { env: { TMPDIR: `${base}/tmp` } });
    assertEquals(verify.code, 0, verify.stderr.join("\n"));
    assertMatch(verify.stdout[0], /^OK: /);
    assertEquals(listDir(`${base}/tmp`), []);

    Deno.writeTextFileSync(`${dir}/config`, `important-plugin=${dir}/cln-backup-plugin\n`);
    Deno.writeFileSync(`${dir}/hsm_secret`, new Uint8Array(32), { mode: 0o400 });
    const doctor = await backupCli(cli, ["doctor", "--lightning-dir", dir]);
    assertEquals(doctor.stderr, []);
    assertEquals(
      doctor.stdout.filter((line) => /^(FAIL|SKIP)/.test(line)),
      [],
      doctor.stdout.join("\n"),
    );
    assertEquals(doctor.code, 0);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("backup-cli: an encrypted backup's init, restore, rekey, verify and status under their permissions", async () => {
  const root = sharedCheckout();
  const cli = `${root}/backup-cli`;
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    Deno.writeTextFileSync(`${base}/old`, "old passphrase\n", { mode: 0o600 });
    Deno.writeTextFileSync(`${base}/new`, "new passphrase\n", { mode: 0o600 });
    const url = `file://${base}/backup`;
    const init = await backupCli(
      cli,
      ["init", "--encrypt", "--passphrase-file", `${base}/old`, "--lightning-dir", dir, url],
    );
    assertEquals(init.code, 0, init.stderr.join("\n"));
    assertEquals(Deno.statSync(`${dir}/backup.key`).mode! & 0o777, 0o600);
    const restore = await backupCli(
      cli,
      ["restore", url, `${base}/restored.sqlite3`, "--passphrase-file", `${base}/old`],
    );
    assertEquals(restore.code, 0, restore.stderr.join("\n"));
    assertEquals(
      dumpDatabase(`${base}/restored.sqlite3`),
      dumpDatabase(loadFixture("fresh-start").database),
    );
    const rekey = await backupCli(
      cli,
      ["rekey", url, "--passphrase-file", `${base}/old`, "--new-passphrase-file", `${base}/new`],
    );
    assertEquals(rekey.code, 0, rekey.stderr.join("\n"));
    const verify = await backupCli(cli, ["verify", url], {
      env: { CLN_BACKUP_PASSPHRASE: "new passphrase" },
    });
    assertEquals(verify.code, 0, verify.stderr.join("\n"));
    const status = await backupCli(cli, ["status", url]);
    assertEquals(status.code, 0, status.stderr.join("\n"));
    assert(status.stdout.some((line) => /^encryption: encrypted/.test(line)), status.stdout.join());
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("backup-cli: --help lists the commands, and each command has its own", async () => {
  const root = sharedCheckout();
  const help = await backupCli(`${root}/backup-cli`, ["--help"]);
  assertEquals(help.code, 0);
  for (const name of Object.keys(COMMANDS)) {
    assert(help.stdout.some((line) => line.startsWith(`  ${name} `)), `--help lists ${name}`);
    const own = await backupCli(`${root}/backup-cli`, [name, "--help"]);
    assertEquals(own.code, 0, name);
    assertMatch(own.stdout[0], new RegExp(`^Usage: cln-backup ${name}`));
  }
});

Deno.test("backup-cli server, as a Python systemd unit runs it with --allow-v1 added, serves and compacts with its permissions", async () => {
  const root = sharedCheckout();
  const storage = Deno.makeTempDirSync({ prefix: "cln-backup-served-" });
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = free.addr.port;
  free.close();
  const url = `file://${storage}/backup`;
  const child = new Deno.Command(`${root}/backup-cli`, {
    args: ["server", url, `127.0.0.1:${port}`, "--log-mode", "systemd", "--allow-v1"],
    clearEnv: true,
    env: await homelessEnv(SYSTEM_PATH),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes(`<6>serving ${url} (wire v1) on 127.0.0.1:${port}`)) {
      const { value, done } = await lines.read();
      assert(!done, `the server exited before serving: ${seen}`);
      seen += value;
    }
    // A snapshot, two changes, then COMPACT: the compaction worker runs under the server's
    // permissions.
    const client = await RawClient.connect(port);
    const database = `${storage}/node.sqlite3`;
    const db = new DatabaseSync(database);
    db.exec("CREATE TABLE vars (name TEXT, intval INTEGER, blobval BLOB)");
    db.exec("INSERT INTO vars (name, intval) VALUES ('data_version', 1)");
    db.close();
    await client.send(encodeSnapshot(1, Deno.readFileSync(database)));
    assertEquals((await client.next())?.type, PacketType.Ack);
    for (const version of [2, 3]) {
      await client.send(encodeChange(version, [bumpStatement(version - 1)]));
      assertEquals((await client.next())?.type, PacketType.Ack);
    }
    await client.send(encodePacket(PacketType.Compact));
    const compacted = await client.next();
    assertEquals(compacted?.type, PacketType.CompactRes, seen);
    assertEquals(decodeCompactResult(compacted!).base_version, 2);
    client.close();
    const reader = await connectReader(`socket:127.0.0.1:${port}`);
    assertEquals(reader.describe().lastVersion, 3);
    reader.close();
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      seen += value;
    }
    const { code } = await child.status;
    assertEquals(code, 0, seen);
    assert(seen.includes("<6>SIGTERM: stopping"), seen);
    assertEquals(await new Response(child.stderr).text(), "");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    Deno.removeSync(storage, { recursive: true });
  }
});

Deno.test("backup-cli server on the Python server's .dbak names upgrade <url>, which converts it for the server", async () => {
  const root = sharedCheckout();
  const cli = `${root}/backup-cli`;
  const storage = Deno.makeTempDirSync({ prefix: "cln-backup-served-" });
  // The Python remote.md's storage: "backup-cli init file:///path/to/backup", a v1 file.
  const v1Url = `file://${storage}/backup`;
  Deno.copyFileSync(PRE_4090_BACKUP, `${storage}/backup`);
  try {
    // The Python unit's command line with only the path changed, then with --allow-v1.
    for (const extra of [[], ["--allow-v1"]]) {
      const refused = await backupCli(cli, [
        "server",
        v1Url,
        "127.0.0.1:1",
        "--log-mode",
        "systemd",
        ...extra,
      ]);
      assertEquals(refused.code, 1);
      // Under --log-mode systemd, with the error priority journald reads, as its log lines.
      assertEquals(refused.stderr, [
        `<3>Cannot serve backup: "${storage}/backup" is a v1 .dbak of the Python plugin, which ` +
        `this server does not write to: with the Python server stopped, convert it once ` +
        `with "${cli} upgrade '${v1Url}'", then serve the directory it makes with ` +
        `--allow-v1 (it prints the command line)`,
      ]);
    }
    const upgraded = await backupCli(cli, ["upgrade", v1Url]);
    assertEquals(upgraded.code, 0, upgraded.stderr.join("\n"));
    const converted = `file://${storage}/backup.clnb`;
    assertEquals(upgraded.stdout, [
      `Converted "${storage}/backup" (versions 1 to 46, 46 records) into ` +
      `"${storage}/backup.clnb"; the v1 file is untouched`,
      `Serve it instead of the v1 file: in the Python server's command line (a systemd ` +
      `unit's ExecStart=), put cln-backup's backup-cli for the Python one, ${converted} for ` +
      `${v1Url}, and add --allow-v1; the address and --log-mode stay, and the nodes keep ` +
      `their socket: URL. Check it with "${cli} verify '${converted}'", then delete the v1 ` +
      `file when you like`,
    ]);
    assertEquals(openReader(converted).describe().lastVersion, 46);
    assertEquals(listDir(storage), ["backup", "backup.clnb"]);
    // Again: it says so, and changes nothing.
    assertEquals((await backupCli(cli, ["upgrade", v1Url])).code, 1);
    assertEquals((await backupCli(cli, ["upgrade", converted])).stdout, [
      `"${storage}/backup.clnb" is a cln-backup backup already: nothing to upgrade`,
    ]);
    assertEquals((await backupCli(cli, ["upgrade", v1Url, "--lightning-dir", storage])).code, 2);
  } finally {
    Deno.removeSync(storage, { recursive: true });
  }
});

Deno.test("backup-cli without Deno anywhere says in one line how to get it", async () => {
  const root = checkout(false);
  // Nothing on PATH at all: not even the system's directories, which could hold a deno.
  const empty = Deno.makeTempDirSync();
  try {
    const run = await backupCli(`${root}/backup-cli`, ["--help"], { path: empty });
    assertEquals(run, {
      code: 1,
      stdout: [],
      stderr: [
        `Cannot run backup-cli: no Deno in "${Deno.realPathSync(root)}/node_modules" or on ` +
        `PATH: run "npm install --no-save deno@2.9.6" in "${Deno.realPathSync(root)}"`,
      ],
    });
  } finally {
    Deno.removeSync(empty);
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("backup-cli started through a symlink in another directory finds its checkout", async () => {
  const root = sharedCheckout();
  const bin = Deno.makeTempDirSync();
  try {
    Deno.symlinkSync(`${root}/backup-cli`, `${bin}/backup-cli`);
    const run = await backupCli("backup-cli", ["status", "--help"], {
      path: `${bin}:${SYSTEM_PATH}`,
    });
    assertEquals(run.code, 0, run.stderr.join("\n"));
    assertMatch(run.stdout[0], /^Usage: cln-backup status/);
  } finally {
    Deno.removeSync(bin, { recursive: true });
  }
});

Deno.test('backup-cli: run as "sh backup-cli", the commands it advises are ./backup-cli\'s, which run', async () => {
  const root = sharedCheckout();
  const dir = Deno.makeTempDirSync();
  try {
    const doctor = await backupCli("sh", ["backup-cli", "doctor", "--lightning-dir", dir], {
      cwd: root,
    });
    // "backup-cli init …" would not run: the checkout is not on PATH.
    assert(
      doctor.stdout.some((line) =>
        line.includes(`"./backup-cli init file:///path/to/backup --lightning-dir '${dir}'"`)
      ),
      doctor.stdout.join("\n"),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("backup-cli in a checkout missing a file of its code says in one line to install again", async () => {
  const root = checkout();
  try {
    // The code copied, not linked, and one command's file gone (an update cut short).
    Deno.removeSync(`${root}/lib`);
    new Deno.Command("cp", { args: ["-R", `${PROJECT}lib`, `${root}/lib`] }).outputSync();
    Deno.removeSync(`${root}/lib/cli/rekey.ts`);
    const real = Deno.realPathSync(root);
    for (const args of [["--help"], ["rekey", "file:///x"]]) {
      assertEquals(await backupCli(`${root}/backup-cli`, args), {
        code: 1,
        stdout: [],
        stderr: [
          `Cannot run backup-cli: its code cannot be loaded (Module not found ` +
          `"file://${real}/lib/cli/rekey.ts".): install cln-backup again, each file readable ` +
          `by the user that runs it`,
        ],
      }, args.join(" "));
    }
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
