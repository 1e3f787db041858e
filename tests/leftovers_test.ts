/**
 * A `kill -9` of init, restore or upgrade while its work path exists (lib/fs/work_path.ts): the
 * next run of a command removes what the dead process left, says so, and keeps what a live one
 * holds; an init killed once its backup is complete is finished by the next.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { loadFixture, PRE_4090_BACKUP } from "./support/fixtures.ts";
import { openReader } from "../lib/backends/open.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { CliProcess } from "./support/cli_process.ts";
import { init } from "../lib/cli/init.ts";
import { restore } from "../lib/cli/restore.ts";
import { upgrade } from "../lib/cli/upgrade.ts";
import { removeLeftovers } from "../lib/fs/work_path.ts";
import { releaseLock } from "../lib/fs/flock.ts";
import type { SeamStep } from "../lib/fs/step_seam.ts";
import {
  BufferedOutput,
  makeBackup,
  makeNodeDir,
  recordedChanges,
  removeNodeDir,
} from "./support/cli_testing.ts";
import { mirror } from "../lib/cli/mirror.ts";
import { readLockFile, writeLockFile } from "../lib/backup/lock_file.ts";
import { withTestServer } from "./support/wire_server.ts";
import { FaultProxy } from "./support/fault_proxy.ts";
import { HEADER_BYTES, METADATA_BYTES } from "../lib/wire/packets.ts";
import { DatabaseSync } from "node:sqlite";
import { PASSPHRASE } from "./support/encrypted.ts";
import { openAtStart } from "../lib/plugin/startup.ts";
import { ageRecipientOf, newAgeIdentity } from "../lib/crypto/primitives.ts";

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Runs `args`, killed at the `nth` time it reaches `step`; returns the dead process's pid. */
async function killedAt(args: string[], step: SeamStep, nth = 1): Promise<number> {
  const process = new CliProcess(args, { action: "crash", step, nth });
  const run = await process.result();
  assertEquals(run.signal, "SIGKILL", run.stderr.join("\n"));
  return process.pid;
}

/**
 * The node at `dir` (fresh-start's) with a plain backup through restart beside its lightning
 * dir, named by backup.lock: what an upgrade --encrypt converts.
 */
async function plainBackupOf(dir: string): Promise<{ base: string; plain: string }> {
  const base = Deno.realPathSync(`${dir}/..`);
  const plain = await makeBackup(`${base}/plain`, recordedChanges(["restart"]), {
    version: 11,
    path: loadFixture("fresh-start").database,
  });
  writeLockFile(dir, { backend_url: plain });
  return { base, plain };
}

function removedLine(path: string, pid: number, command: string): string {
  return `Removed "${path}", left by process ${pid}, a killed ${command}`;
}

Deno.test("a killed init leaves its snapshot copy; the next init removes it and says so", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  const url = `file://${base}/backups/node`;
  const pid = await killedAt(["init", url, "--lightning-dir", dir], "init-snapshot");
  assertEquals(names(`${base}/backups`), [`node.snapshot-${pid}`]);

  const output = new BufferedOutput();
  assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.stderr.join("\n"));
  assertEquals(
    output.stdout[0],
    removedLine(`${base}/backups/node.snapshot-${pid}`, pid, "init or mirror"),
  );
  assertEquals(names(`${base}/backups`), ["node"]);
  removeNodeDir(dir);
});

Deno.test("a killed init leaves its backup directory; an init to another path beside it leaves it", async () => {
  // A directory a destination is in may be a NAS share other nodes write to: another host's
  // init runs under a pid not running here, and its flock may not reach this host over NFS.
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  const pid = await killedAt(
    ["init", `file://${base}/backups/node`, "--lightning-dir", dir],
    "create-building",
  );
  assertEquals(names(`${base}/backups`), [`node.creating-${pid}`, `node.snapshot-${pid}`]);
  assert(names(`${base}/backups/node.creating-${pid}`).some((n) => n.startsWith("base-")));

  const output = new BufferedOutput();
  const url = `file://${base}/backups/other`;
  assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.stderr.join("\n"));
  assertEquals(output.stdout.filter((line) => /^(Removed|Could not remove) /.test(line)), []);
  assertEquals(names(`${base}/backups`), [
    `node.creating-${pid}`,
    `node.snapshot-${pid}`,
    "other",
  ]);
  removeNodeDir(dir);
});

Deno.test("an init killed making a copy elsewhere: the rerun removes what it left beside the copy", async () => {
  // Its snapshot there is a whole copy of the node's database: only the lightning dir and the
  // first destination's directory were cleared.
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  Deno.mkdirSync(`${base}/copies`);
  const args = [
    `file://${base}/node`,
    "--mirror",
    `file://${base}/copies/copy`,
    "--lightning-dir",
    dir,
  ];
  const pid = await killedAt(["init", ...args], "create-building", 2);
  assertEquals(names(`${base}/copies`), [`copy.creating-${pid}`, `copy.snapshot-${pid}`]);

  const output = new BufferedOutput();
  assertEquals(await init(args, output), 0, output.transcript);
  assertEquals(output.stdout.slice(0, 2).sort(), [
    removedLine(`${base}/copies/copy.creating-${pid}`, pid, "init or mirror"),
    removedLine(`${base}/copies/copy.snapshot-${pid}`, pid, "init or mirror"),
  ]);
  assertEquals(names(`${base}/copies`), ["copy"]);
  removeNodeDir(dir);
});

Deno.test("a killed mirror leaves its copy's work paths; the next mirror removes them and says so", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  const output = new BufferedOutput();
  assertEquals(await init([`file://${base}/node`, "--lightning-dir", dir], output), 0);
  Deno.mkdirSync(`${base}/copies`);
  const args = [`file://${base}/copies/copy`, "--lightning-dir", dir];
  const pid = await killedAt(["mirror", ...args], "create-building");
  assertEquals(names(`${base}/copies`), [`copy.creating-${pid}`, `copy.snapshot-${pid}`]);

  const again = new BufferedOutput();
  assertEquals(await mirror(args, again), 0, again.transcript);
  assertEquals(again.stdout.slice(0, 2).sort(), [
    removedLine(`${base}/copies/copy.creating-${pid}`, pid, "init or mirror"),
    removedLine(`${base}/copies/copy.snapshot-${pid}`, pid, "init or mirror"),
  ]);
  assertEquals(names(`${base}/copies`), ["copy"]);
  removeNodeDir(dir);
});

Deno.test("a killed restore leaves its database; the next restore removes it and says so", async () => {
  const dir = Deno.makeTempDirSync();
  const url = `file://${PRE_4090_BACKUP}`;
  const pid = await killedAt(["restore", url, dir], "restore-building");
  assertEquals(names(dir), [`lightningd.sqlite3.restoring-${pid}`]);

  const output = new BufferedOutput();
  assertEquals(await restore([url, dir], output), 0, output.stderr.join("\n"));
  assertEquals(
    output.stdout[0],
    removedLine(`${dir}/lightningd.sqlite3.restoring-${pid}`, pid, "restore"),
  );
  assertEquals(names(dir), ["lightningd.sqlite3"]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("a killed upgrade leaves its conversion; the next upgrade removes it and says so", async () => {
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
  const lock = JSON.stringify({ backend_url: `file://${base}/backup.dbak` });
  Deno.writeTextFileSync(`${dir}/backup.lock`, lock);
  const pid = await killedAt(["upgrade", "--lightning-dir", dir], "upgrade-building");
  assertEquals(names(base), [`backup.clnb.upgrading-${pid}`, "backup.dbak", "regtest"]);
  assertEquals(Deno.readTextFileSync(`${dir}/backup.lock`), lock);

  const output = new BufferedOutput();
  assertEquals(await upgrade(["--lightning-dir", dir], output), 0, output.stderr.join("\n"));
  assertEquals(
    output.stdout[0],
    removedLine(`${base}/backup.clnb.upgrading-${pid}`, pid, "upgrade"),
  );
  assertEquals(names(base), ["backup.clnb", "backup.dbak", "regtest"]);
  removeNodeDir(dir);
});

Deno.test("an upgrade killed once its conversion is in place is finished by the next", async () => {
  // Before this, the next upgrade refused the path ("choose another path with --to"), and
  // following that left a stale conversion at the default path, where restore of the v1
  // file looks for the backup the node went on with.
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
  const lock = JSON.stringify({ backend_url: `file://${base}/backup.dbak` });
  Deno.writeTextFileSync(`${dir}/backup.lock`, lock);
  await killedAt(["upgrade", "--lightning-dir", dir], "upgrade-before-lock");
  assertEquals(names(base), ["backup.clnb", "backup.dbak", "regtest"]);
  assertEquals(Deno.readTextFileSync(`${dir}/backup.lock`), lock);

  const output = new BufferedOutput();
  assertEquals(await upgrade(["--lightning-dir", dir], output), 0, output.transcript);
  assertEquals(
    output.stdout[0],
    `Found "${base}/backup.clnb", the whole conversion of "${base}/backup.dbak" (versions 1 ` +
      `to 46) that an interrupted upgrade left: finished its set-up; the v1 file is untouched`,
  );
  assertEquals(readLockFile(dir).backend_url, `file://${base}/backup.clnb`);
  assertEquals(output.stdout.at(-1), `important-plugin=${dir}/cln-backup-plugin`);
  removeNodeDir(dir);
});

Deno.test("an upgrade --encrypt killed before backup.lock is finished by a rerun given its passphrase", async () => {
  // Its key file beside backup.lock, which names the plain backup still, stops the plugin, and
  // the rerun refused the encrypted copy's path ("choose another path with --to").
  const dir = makeNodeDir("fresh-start");
  try {
    const { base, plain } = await plainBackupOf(dir);
    const [right, wrong] = [`${base}/right`, `${base}/wrong`];
    Deno.writeTextFileSync(right, `${PASSPHRASE}\n`, { mode: 0o600 });
    Deno.writeTextFileSync(wrong, "another passphrase\n", { mode: 0o600 });
    const args = (passphrase: string) => [
      "--lightning-dir",
      dir,
      "--encrypt",
      "--passphrase-file",
      passphrase,
    ];
    await killedAt(["upgrade", ...args(right)], "upgrade-before-lock");
    assertEquals(readLockFile(dir).backend_url, plain);
    const key = Deno.readTextFileSync(`${dir}/backup.key`);

    const refused = new BufferedOutput();
    assertEquals(await upgrade(args(wrong), refused), 1);
    assertMatch(
      refused.stderr[0],
      /^Cannot upgrade backup: ".*plain.encrypted", which an interrupted upgrade left, does not open with the secret given \(.*\): give the secret the interrupted upgrade was given/,
    );
    assertEquals(readLockFile(dir).backend_url, plain);

    const output = new BufferedOutput();
    assertEquals(await upgrade(args(right), output), 0, output.transcript);
    assertEquals(
      output.stdout[0],
      `Found "${base}/plain.encrypted", the whole encrypted copy of "${base}/plain" (versions ` +
        `11 to 15, encrypted) that an interrupted upgrade left: finished its set-up; the ` +
        `plain backup is untouched`,
    );
    assertEquals(readLockFile(dir).backend_url, `file://${base}/plain.encrypted`);
    assertEquals(Deno.readTextFileSync(`${dir}/backup.key`), key);
    const startup = await openAtStart(dir);
    assert(!("error" in startup.backend), JSON.stringify(startup.backend));
    assertEquals(startup.backend.state().version, 15);
    startup.backend.close();
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("an upgrade --encrypt to a recipient killed before backup.lock is finished by a rerun for it, with the key file", async () => {
  const dir = makeNodeDir("fresh-start");
  try {
    const { base } = await plainBackupOf(dir);
    const [recipient, other] = await Promise.all(
      [newAgeIdentity(), newAgeIdentity()].map(async (id) => ageRecipientOf(await id)),
    );
    const args = (to: string) => ["--lightning-dir", dir, "--encrypt", "--recipient", to];
    await killedAt(["upgrade", ...args(recipient)], "upgrade-before-lock");

    const refused = new BufferedOutput();
    assertEquals(await upgrade(args(other), refused), 1);
    assertEquals(refused.stderr, [
      `Cannot upgrade backup: "${base}/plain.encrypted", which an interrupted upgrade left, is ` +
      `not wrapped for the recipient given, ${other}: give the secret the interrupted upgrade ` +
      `was given, or move it aside and run upgrade again`,
    ]);
    // An identity given in the recipient's place is a secret: refused as such, not repeated.
    const identity = await newAgeIdentity();
    const secret = new BufferedOutput();
    assertEquals(await upgrade(args(identity), secret), 1);
    assertEquals(secret.stderr, [
      `Cannot upgrade backup: the recipient given is an age identity (AGE-SECRET-KEY-1...), ` +
      `the secret half: give its public key instead (age1..., the "public key:" line of the ` +
      `identity file); nothing was changed`,
    ]);
    const output = new BufferedOutput();
    assertEquals(await upgrade(args(recipient), output), 0, output.transcript);
    assertMatch(output.stdout[0], /^Found ".*plain.encrypted", the whole encrypted copy of /);
    assertEquals(readLockFile(dir).backend_url, `file://${base}/plain.encrypted`);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("an upgrade --encrypt rerun with the passphrase but other recipients does not take the killed run's copy", async () => {
  // The passphrase opened the copy, which was adopted wrapped for the killed run's recipient:
  // the one given now did not open the backup the rerun said it had set up.
  const dir = makeNodeDir("fresh-start");
  try {
    const { base, plain } = await plainBackupOf(dir);
    const passphrase = `${base}/passphrase`;
    Deno.writeTextFileSync(passphrase, `${PASSPHRASE}\n`, { mode: 0o600 });
    const [first, second] = await Promise.all(
      [newAgeIdentity(), newAgeIdentity()].map(async (id) => ageRecipientOf(await id)),
    );
    const args = (extra: string[]) => [
      "--lightning-dir",
      dir,
      "--encrypt",
      "--passphrase-file",
      passphrase,
      ...extra,
    ];
    await killedAt(["upgrade", ...args(["--recipient", first])], "upgrade-before-lock");

    for (const extra of [["--recipient", second], []]) {
      const refused = new BufferedOutput();
      assertEquals(await upgrade(args(extra), refused), 1, refused.transcript);
      assertEquals(refused.stderr, [
        `Cannot upgrade backup: "${base}/plain.encrypted", which an interrupted upgrade left, ` +
        `is wrapped for passphrase and age recipient ${first}, not for the secrets given: ` +
        `give the secret the interrupted upgrade was given, or move it aside and run upgrade ` +
        `again`,
      ]);
      assertEquals(readLockFile(dir).backend_url, plain);
    }
    const output = new BufferedOutput();
    assertEquals(await upgrade(args(["--recipient", first]), output), 0, output.transcript);
    assertMatch(output.stdout[0], /^Found ".*plain.encrypted", the whole encrypted copy of /);
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("leftovers of a live process, held files, symlinks and other names are kept", async () => {
  const dir = Deno.makeTempDirSync();
  const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const ended = new Deno.Command("true").spawn();
  await ended.status;
  const dead = ended.pid;
  try {
    // A live pid: kept, even if it is not ours (a reused pid keeps a stale file: safe).
    Deno.writeTextFileSync(`${dir}/db.restoring-${sleeper.pid}`, "");
    // A dead pid, but locked: a process in another pid namespace still works on it.
    Deno.writeTextFileSync(`${dir}/held.restoring-${dead}`, "");
    const held = Deno.openSync(`${dir}/held.restoring-${dead}`, { read: true });
    // Not ours: a symlink, and names of another form.
    Deno.symlinkSync("/etc/hostname", `${dir}/link.restoring-${dead}`);
    Deno.writeTextFileSync(`${dir}/db.restoring-${dead}.bak`, "");
    Deno.writeTextFileSync(`${dir}/db.restored-${dead}`, "");
    // An operator's dated copy: above any pid Linux gives.
    Deno.writeTextFileSync(`${dir}/lightningd.sqlite3.snapshot-20240601`, "");
    // A companion whose database is held stays with it; a dead process's files go.
    Deno.writeTextFileSync(`${dir}/held.restoring-${dead}-journal`, "");
    Deno.mkdirSync(`${dir}/b.upgrading-${dead}`);
    Deno.writeTextFileSync(`${dir}/b.upgrading-${dead}/log-1.clnb`, "x");
    Deno.writeTextFileSync(`${dir}/gone.snapshot-${dead}-wal`, "");
    held.lockSync(true);
    const before = names(dir);

    const lines = removeLeftovers(dir);
    assertEquals(lines.sort(), [
      removedLine(`${dir}/b.upgrading-${dead}`, dead, "upgrade"),
      removedLine(`${dir}/gone.snapshot-${dead}-wal`, dead, "init or mirror"),
    ]);
    assertEquals(
      names(dir),
      before.filter((n) => n !== `b.upgrading-${dead}` && n !== `gone.snapshot-${dead}-wal`),
    );
    // Unlocked, not just closed: a child another test file forks meanwhile holds a copy of
    // the open file, and with it the lock, until it execs (lib/fs/flock.ts).
    releaseLock(held);
    assertEquals(removeLeftovers(dir).sort(), [
      removedLine(`${dir}/held.restoring-${dead}`, dead, "restore"),
      removedLine(`${dir}/held.restoring-${dead}-journal`, dead, "restore"),
    ]);
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("init killed after creating the backup, before backup.lock: the rerun finishes it", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  const url = `file://${base}/backup`;
  await killedAt(["init", url, "--lightning-dir", dir], "init-before-lock");
  assertEquals(names(dir), ["hsm_secret", "lightningd.sqlite3"]);
  assertEquals(names(base), ["backup", "regtest"]);

  const output = new BufferedOutput();
  assertEquals(await init([url, "--lightning-dir", dir], output), 0, output.stderr.join("\n"));
  assertEquals(output.stdout.slice(0, 2), [
    `Found the backup "${base}/backup" an interrupted init left, complete at the database's ` +
    `version 11 with no change: finished its set-up`,
    `Wrote "${dir}/backup.lock" and the launcher "${dir}/cln-backup-plugin"`,
  ]);
  assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)), { backend_url: url });
  restoreBackup(openReader(url), `${base}/restored.sqlite3`);
  assertEquals(
    dumpDatabase(`${base}/restored.sqlite3`),
    dumpDatabase(loadFixture("fresh-start").database),
  );
  removeNodeDir(dir);
});

Deno.test("init finishes an empty node's interrupted set-up, not a backup the node outgrew", async () => {
  const empty = makeNodeDir();
  const url = `file://${Deno.realPathSync(`${empty}/..`)}/backup`;
  await killedAt(["init", url, "--lightning-dir", empty], "init-before-lock");
  const output = new BufferedOutput();
  assertEquals(await init([url, "--lightning-dir", empty], output), 0, output.stderr.join("\n"));
  assertMatch(output.stdout[0], /an interrupted init left, complete at the database's version 0/);
  removeNodeDir(empty);

  // The node ran on (without the plugin) after the killed init: its backup is behind.
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  await killedAt(["init", `file://${base}/backup`, "--lightning-dir", dir], "init-before-lock");
  Deno.copyFileSync(loadFixture("restart").database, `${dir}/lightningd.sqlite3`);
  const refused = new BufferedOutput();
  assertEquals(await init([`file://${base}/backup`, "--lightning-dir", dir], refused), 1);
  assertEquals(refused.stderr, [
    `Cannot init backup: "${base}/backup" already exists, a backup of versions 11 to 11, not ` +
    `what an interrupted init of this node leaves (a snapshot at the database's version 15 and ` +
    `no change): choose a new path, or remove it if it is not a backup you need`,
  ]);
  assertEquals(names(dir), ["hsm_secret", "lightningd.sqlite3"]);
  removeNodeDir(dir);
});

Deno.test("an encrypted init killed before backup.lock is finished by a rerun given the same passphrase, not another", async () => {
  const dir = makeNodeDir("fresh-start");
  try {
    const base = Deno.realPathSync(`${dir}/..`);
    const url = `file://${base}/backup`;
    const [right, wrong] = [`${base}/right`, `${base}/wrong`];
    Deno.writeTextFileSync(right, `${PASSPHRASE}\n`, { mode: 0o600 });
    Deno.writeTextFileSync(wrong, "another passphrase\n", { mode: 0o600 });
    const args = (passphrase: string) => [
      url,
      "--lightning-dir",
      dir,
      "--encrypt",
      "--passphrase-file",
      passphrase,
    ];
    await killedAt(["init", ...args(right)], "init-before-lock");
    const key = Deno.readTextFileSync(`${dir}/backup.key`);
    const refused = new BufferedOutput();
    assertEquals(await init(args(wrong), refused), 1);
    assertMatch(
      refused.stderr[0],
      /which an interrupted init left, is not this init's: its key does not open: .*; give the one the interrupted init was given/,
    );
    assertEquals(refused.stderr[0].match(/Cannot /g)?.length, 1, "one line, one prefix");
    assertEquals(Deno.readTextFileSync(`${dir}/backup.key`), key);
    const output = new BufferedOutput();
    assertEquals(await init(args(right), output), 0, output.transcript);
    assertMatch(output.stdout[0], /^Found the backup .* an interrupted init left, complete/);
    assertEquals(Deno.readTextFileSync(`${dir}/backup.key`), key);
  } finally {
    removeNodeDir(dir);
  }
});

/**
 * Runs `body` with the server behind a proxy (its `url`) that passes the server's answers up
 * to METADATA and cuts the connection at its ACK, which it sends once the snapshot is stored.
 */
async function withAckCut(body: (url: string, proxy: FaultProxy) => Promise<void>) {
  await withTestServer(async (server) => {
    const cut = HEADER_BYTES + METADATA_BYTES;
    const proxy = new FaultProxy(server.server.port, { kind: "cut", direction: "s2c", at: cut });
    try {
      await body(`socket:127.0.0.1:${proxy.port}`, proxy);
    } finally {
      await proxy.close();
    }
  });
}

Deno.test("init over socket killed before backup.lock: the rerun finds its snapshot on the server", async () => {
  await withTestServer(async (server, root) => {
    const dir = makeNodeDir("fresh-start");
    try {
      await killedAt(["init", server.url, "--lightning-dir", dir], "init-before-lock");
      assertEquals(names(dir), ["hsm_secret", "lightningd.sqlite3"]);

      const output = new BufferedOutput();
      assertEquals(await init([server.url, "--lightning-dir", dir], output), 0, output.transcript);
      assertEquals(output.stdout.slice(0, 2), [
        `Found the backup ${server.url} an interrupted init left, a snapshot of ` +
        `"${dir}/lightningd.sqlite3" at version 11 and no change: finished its set-up`,
        `Wrote "${dir}/backup.lock" and the launcher "${dir}/cln-backup-plugin"`,
      ]);
      assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)), {
        backend_url: server.url,
      });
      const restored = new BufferedOutput();
      assertEquals(await restore([server.url, `${root}/restored.sqlite3`], restored), 0);
      assertEquals(
        dumpDatabase(`${root}/restored.sqlite3`),
        dumpDatabase(loadFixture("fresh-start").database),
      );
    } finally {
      removeNodeDir(dir);
    }
  });
});

Deno.test("init over socket that loses its connection before the ACK says to run it again, which finds it", async () => {
  await withAckCut(async (url, proxy) => {
    const dir = makeNodeDir("fresh-start");
    try {
      const lost = new BufferedOutput();
      assertEquals(await init([url, "--lightning-dir", dir], lost), 1);
      assertMatch(
        lost.stderr[0],
        /may have stored the snapshot all the same: run this init again: while the database is/,
      );
      assert(proxy.struck);
      assertEquals(names(dir), ["hsm_secret", "lightningd.sqlite3"]);
      const again = new BufferedOutput();
      assertEquals(await init([url, "--lightning-dir", dir], again), 0, again.transcript);
      assertMatch(again.stdout[0], /^Found the backup .* an interrupted init left/);
    } finally {
      removeNodeDir(dir);
    }
  });
});

Deno.test("mirror to a socket that loses its connection before the ACK does not say to rerun init", async () => {
  await withAckCut(async (copy) => {
    const dir = makeNodeDir("restart");
    try {
      const base = Deno.realPathSync(`${dir}/..`);
      const url = await makeBackup(`${base}/first`, recordedChanges(["fresh-start", "restart"]));
      writeLockFile(dir, { backend_url: url });
      const lost = new BufferedOutput();
      assertEquals(await mirror([copy, "--lightning-dir", dir], lost), 1);
      assertMatch(
        lost.stderr[0],
        /may have stored the snapshot all the same: if a second try finds that backup not empty, give this destination a new storage directory/,
      );
      assertEquals(readLockFile(dir), { backend_url: url });
    } finally {
      removeNodeDir(dir);
    }
  });
});

Deno.test("init over socket does not take another node's snapshot at the same version", async () => {
  await withTestServer(async (server) => {
    const first = makeNodeDir("fresh-start");
    const other = makeNodeDir("fresh-start");
    try {
      await killedAt(["init", server.url, "--lightning-dir", first], "init-before-lock");
      // Another node at the same data_version, its database otherwise not the same.
      const db = new DatabaseSync(`${other}/lightningd.sqlite3`);
      db.exec("CREATE TABLE other_node (x INTEGER)");
      db.close();
      const refused = new BufferedOutput();
      assertEquals(await init([server.url, "--lightning-dir", other], refused), 1);
      assertMatch(
        refused.stderr[0],
        /already holds a backup at version 11, not what an interrupted init of this node leaves/,
      );
      assertEquals(names(other), ["hsm_secret", "lightningd.sqlite3"]);
    } finally {
      removeNodeDir(first);
      removeNodeDir(other);
    }
  });
});

Deno.test("init to a file path does not take another node's snapshot at the same version", async () => {
  const first = makeNodeDir("fresh-start");
  const other = makeNodeDir("fresh-start");
  try {
    const url = `file://${Deno.realPathSync(`${first}/..`)}/backup`;
    await killedAt(["init", url, "--lightning-dir", first], "init-before-lock");
    // Another node at the same data_version, its database otherwise not the same.
    const db = new DatabaseSync(`${other}/lightningd.sqlite3`);
    db.exec("CREATE TABLE other_node (x INTEGER)");
    db.close();
    const refused = new BufferedOutput();
    assertEquals(await init([url, "--lightning-dir", other], refused), 1);
    assertMatch(
      refused.stderr[0],
      /already exists, a snapshot at version 11 of another database than ".*" \(another node's backup, .*\): choose a new path/,
    );
    assertEquals(names(other), ["hsm_secret", "lightningd.sqlite3"]);
  } finally {
    removeNodeDir(first);
    removeNodeDir(other);
  }
});

Deno.test("an encrypted init killed before backup.lock, rerun with an identity as --recipient: refused without printing it", async () => {
  const dir = makeNodeDir("fresh-start");
  try {
    const base = Deno.realPathSync(`${dir}/..`);
    const url = `file://${base}/backup`;
    const identity = await newAgeIdentity();
    const args = (
      recipient: string,
    ) => [url, "--lightning-dir", dir, "--encrypt", "--recipient", recipient];
    await killedAt(["init", ...args(await ageRecipientOf(identity))], "init-before-lock");
    const refused = new BufferedOutput();
    assertEquals(await init(args(identity), refused), 1);
    assert(!refused.transcript.includes(identity.slice(15)), refused.transcript);
    assertMatch(refused.stderr[0], /the recipient given is an age identity/);
  } finally {
    removeNodeDir(dir);
  }
});
