import { dirname } from "node:path";
import { assert, assertEquals, assertMatch } from "../../../tests/support/assert.ts";
import { PRE_4090_BACKUP } from "../../../tests/support/fixtures.ts";
import { type LockFile, readLockFile, writeLockFile } from "../../backup/lock_file.ts";
import { lockDestinations } from "../../backends/multi/mirrors.ts";
import { parseBackupUrl } from "../../backends/url.ts";
import { readChain } from "../../format/chain.ts";
import { formatBackupId } from "../../format/segment.ts";
import { FileBackend } from "../../backends/file/writer.ts";
import { DataKey } from "../../crypto/data_key.ts";
import { KEY_FILE, writeKeyFile } from "../../crypto/key_file.ts";
import { CREDENTIAL_NAME } from "../../backends/socket/credential.ts";
import { makeEncryptedBackup } from "../../../tests/support/encrypted.ts";
import { compact } from "../compact.ts";
import { copiesCheck } from "./copies_check.ts";
import { describeBackup } from "./describe_backup.ts";
import { hsmSecretCheck } from "./hsm_secret_check.ts";
import { lockCheck } from "./lock_check.ts";
import {
  type Check,
  doctor,
  type DoctorSystem,
  type Level,
  realSystem,
  runChecks,
} from "./doctor.ts";
import { COMPILED_PLUGIN_NAME, launchPlan, writeLauncher } from "../launcher.ts";
import { RUNTIME_FLAGS } from "../runtime_flags.ts";
import { unsearchableAbove } from "./node_user.ts";
import {
  BufferedOutput,
  damageDatabase,
  leaveHotJournal,
  makeBackup,
  makeNodeDir,
  otherDiskAt,
  recordedChanges,
  removeNodeDir,
} from "../../../tests/support/cli_testing.ts";

/** A node set up as the README says: backup in step, config line, launcher, hsm_secret. */
interface Setup {
  dir: string;
  base: string;
  backupPath: string;
  url: string;
  launcher: string;
}

const FRESH_START = recordedChanges(["fresh-start"]);
const RESTART = recordedChanges(["restart"]);

/**
 * Whether a test may play lightningd's user, uid 4242: as root, who may chown, and where that
 * user can reach the temporary directories (not with TMPDIR under root's home).
 */
const PLAYS_NODE_USER = Deno.uid() === 0 && (() => {
  const probe = Deno.makeTempDirSync();
  Deno.removeSync(probe);
  return unsearchableAbove(probe, { uid: 4242, gid: 4242, groups: [4242], from: probe }) ===
    undefined;
})();

async function goodNode(): Promise<Setup> {
  const dir = makeNodeDir("fresh-start"); // lightningd.sqlite3 at version 11, hsm_secret 0400
  const base = dirname(dir);
  const backupPath = `${base}/backup`;
  const url = await makeBackup(backupPath, FRESH_START);
  writeLockFile(dir, { backend_url: url });
  // As the README's set-up installs it (npm install in the checkout), however this test's own
  // Deno was obtained: under npx, Deno.execPath() is in npx's cache, which doctor warns about.
  const deno = `${base}/node_modules/deno/deno`;
  Deno.mkdirSync(dirname(deno), { recursive: true });
  Deno.symlinkSync(Deno.execPath(), deno);
  const launcher = writeLauncher(launchPlan({ lightningDir: dir, backendUrl: url, deno }));
  Deno.writeTextFileSync(
    `${dir}/config`,
    `# regtest node\nnetwork=regtest\nimportant-plugin=${launcher}\n`,
  );
  return { dir, base, backupPath, url, launcher };
}

/** Plenty of room, and the backup on a filesystem of its own. */
const GOOD_SYSTEM: DoctorSystem = {
  freeBytes: () => 1e12,
  device: (path) => path.includes("/backup") ? 2 : 1,
  lifecycle: () => Promise.resolve(undefined),
  groupsOf: () => [],
};

function find(checks: Check[], name: string): Check {
  const check = checks.find((c) => c.name === name);
  assert(check, `no check named ${name} in ${JSON.stringify(checks)}`);
  return check;
}

function expect(checks: Check[], name: string, level: Level, message?: RegExp): void {
  const check = find(checks, name);
  assertEquals(check.level, level, `${name}: ${check.message}`);
  if (message) assertMatch(check.message, message);
}

async function withNode(test: (node: Setup) => void | Promise<void>): Promise<void> {
  const node = await goodNode();
  try {
    await test(node);
  } finally {
    removeNodeDir(node.dir);
  }
}

const NAMES = [
  "backup.lock",
  "backend",
  "version",
  "config",
  "launcher",
  "permissions",
  "hsm_secret",
  "backup.key",
  "credentials",
  "privacy",
  "free space",
  "filesystem",
];

Deno.test("doctor: a node set up as documented passes every check", () =>
  withNode(async (node) => {
    const checks = await runChecks(node.dir, GOOD_SYSTEM);
    assertEquals(checks.map((c) => c.name), NAMES);
    for (const check of checks) assertEquals(check.level, "OK", `${check.name}: ${check.message}`);
    expect(checks, "backup.lock", "OK", new RegExp(`names ${node.url}$`));
    expect(checks, "backend", "OK", /cln-backup 3, versions 1 to 11, 13 records/);
    expect(checks, "version", "OK", /in step at version 11/);
    expect(checks, "hsm_secret", "OK", /useless without it: back it up separately/);
    const output = new BufferedOutput();
    assertEquals(await doctor(["--lightning-dir", node.dir], output, GOOD_SYSTEM), 0);
    assertEquals(output.stdout.length, 1 + NAMES.length + 1);
    assertMatch(output.stdout[1], /^OK {3}backup\.lock: names file:\/\//);
    assertEquals(output.stdout.at(-1), "all checks passed");
  }));

Deno.test("doctor: the wrong directory is one FAIL naming the right one", () =>
  withNode(async (node) => {
    const checks = await runChecks(node.base, GOOD_SYSTEM);
    assertEquals(checks.length, 1);
    expect(
      checks,
      "lightning dir",
      "FAIL",
      /base lightning directory.*--lightning-dir ".*\/regtest"/,
    );
    expect(
      await runChecks(`${node.base}/nonexistent`, GOOD_SYSTEM),
      "lightning dir",
      "FAIL",
      /not a directory/,
    );
    const output = new BufferedOutput();
    assertEquals(await doctor(["--lightning-dir", node.base], output, GOOD_SYSTEM), 1);
    assertEquals(await doctor(["--lightning-dri", node.base], output, GOOD_SYSTEM), 2);
    assertEquals(await doctor(["--help"], output, GOOD_SYSTEM), 0);
    assertMatch(output.stdout.at(-1)!, /^Usage: cln-backup doctor/);
  }));

Deno.test("doctor: backup.lock missing, not JSON, or unreadable by lightningd's user", () =>
  withNode(async (node) => {
    const lock = `${node.dir}/backup.lock`;
    Deno.renameSync(lock, `${lock}.aside`);
    let checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(checks, "backup.lock", "FAIL", /no backup\.lock in .*cln-backup init file:\/\/\//);
    for (const name of ["backend", "version", "permissions", "free space", "filesystem"]) {
      expect(checks, name, "SKIP", /needs /);
    }
    Deno.writeTextFileSync(lock, "backend_url=file:///x\n");
    expect(await runChecks(node.dir, GOOD_SYSTEM), "backup.lock", "FAIL", /is not JSON/);
    Deno.renameSync(`${lock}.aside`, lock);
    if (Deno.uid() !== 0) return; // Needs chown to play lightningd's user.
    for (const path of [node.dir, `${node.dir}/lightningd.sqlite3`, `${node.dir}/hsm_secret`]) {
      Deno.chownSync(path, 4242, 4242);
    }
    Deno.chmodSync(lock, 0o600);
    checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(checks, "backup.lock", "FAIL", /not readable by uid 4242.*chown/);
    Deno.chownSync(lock, 4242, 4242);
    checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(checks, "backup.lock", "OK");
    // The backup is still root's: the plugin could not append.
    expect(checks, "backend", "FAIL", /not writable by uid 4242.*chown -R 4242:4242/);
  }));

Deno.test("doctor: a backup that is missing, or a v1 file the plugin will not append to", () =>
  withNode(async (node) => {
    Deno.renameSync(node.backupPath, `${node.backupPath}.aside`);
    let checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(
      checks,
      "backend",
      "FAIL",
      /nothing at .*: mount the disk it is on, or fix the URL in backup\.lock/,
    );
    expect(checks, "version", "SKIP");
    const v1 = `${node.base}/backup.dbak`;
    Deno.copyFileSync(PRE_4090_BACKUP, v1);
    writeLockFile(node.dir, { backend_url: `file://${v1}` });
    checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(checks, "backend", "FAIL", /v1 backup of the Python plugin.*cln-backup upgrade/);
    // The Python plugin's node has no launcher: upgrade writes it, not init --existing.
    Deno.removeSync(`${node.dir}/cln-backup-plugin`);
    checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(
      checks,
      "launcher",
      "FAIL",
      /is missing, so lightningd cannot start the plugin: upgrade writes it when it converts the Python plugin's v1 backup that backup.lock names \(see backend\)$/,
    );
  }));

Deno.test("doctor: backup.key beside an encrypted backup, and none beside a plain one", () =>
  withNode(async (node) => {
    const keyFile = `${node.dir}/${KEY_FILE}`;
    const check = () => runChecks(node.dir, GOOD_SYSTEM);
    expect(
      await check(),
      "backup.key",
      "OK",
      new RegExp(`none: .* is not encrypted.*upgrade --lightning-dir '${node.dir}' --encrypt`),
    );
    const other = await DataKey.generate();
    writeKeyFile(node.dir, other);
    expect(
      await check(),
      "backup.key",
      "FAIL",
      /is not encrypted, but .* holds a key.*remove the key/,
    );
    Deno.removeSync(keyFile);

    Deno.removeSync(node.backupPath, { recursive: true });
    const key = await makeEncryptedBackup(node.backupPath);
    expect(
      await check(),
      "backup.key",
      "FAIL",
      /is encrypted and .* is missing.*"cln-backup rekey 'file:\/\/[^']*' --key-file '[^']*'"/,
    );
    writeKeyFile(node.dir, key);
    expect(await check(), "backup.key", "OK", /holds .*'s key, mode 0600/);
    Deno.chmodSync(keyFile, 0o640);
    expect(await check(), "backup.key", "FAIL", /read by other users \(mode 0640\).*chmod 600/);
    writeKeyFile(node.dir, other);
    expect(await check(), "backup.key", "FAIL", /another backup's key.*cln-backup rekey/);
    Deno.writeTextFileSync(keyFile, "{}\n", { mode: 0o600 });
    expect(await check(), "backup.key", "FAIL", /holds no cln-backup data key/);
    writeLockFile(node.dir, { backend_url: "socket:backup.example.org:8700" });
    expect(await check(), "backup.key", "FAIL", /takes plain backups only: .*remove the key file/);
    // An S3 backup's key id is in its key.json, which the plugin checks at start.
    writeLockFile(node.dir, { backend_url: "s3://bucket/node?region=eu-1" });
    expect(await check(), "backup.key", "FAIL", /holds no cln-backup data key/);
    writeKeyFile(node.dir, other);
    expect(
      await check(),
      "backup.key",
      "OK",
      /holds a key, mode 0600, for s3:.*the plugin checks it against the backup/,
    );
    Deno.chmodSync(keyFile, 0o640);
    expect(await check(), "backup.key", "FAIL", /read by other users \(mode 0640\)/);
    Deno.removeSync(keyFile);
    expect(await check(), "backup.key", "OK", /none: s3:.* is plain/);
    writeLockFile(node.dir, { backend_url: node.url });
    writeKeyFile(node.dir, key);
    if (PLAYS_NODE_USER) {
      const backup = [...Deno.readDirSync(node.backupPath)].map((e) =>
        `${node.backupPath}/${e.name}`
      );
      for (
        const path of [node.dir, `${node.dir}/lightningd.sqlite3`, `${node.dir}/hsm_secret`]
          .concat(node.backupPath, backup)
      ) Deno.chownSync(path, 4242, 4242);
      // The temporary directory above the backup is root's own: that user must reach it.
      Deno.chmodSync(node.base, 0o755);
      expect(await check(), "backup.key", "FAIL", /not readable by uid 4242/);
      Deno.chownSync(keyFile, 4242, 4242);
      expect(await check(), "backup.key", "OK");
    }
  }));

Deno.test("doctor: a remote backup is left to status, not failed", () =>
  withNode(async (node) => {
    for (const url of ["socket:backup.example.org:8700", "s3://bucket/node?region=eu-1"]) {
      writeLockFile(node.dir, { backend_url: url });
      const checks = await runChecks(node.dir, GOOD_SYSTEM);
      expect(checks, "backend", "WARN", /reads local files only/);
      assert(find(checks, "backend").message.includes(`cln-backup status '${url}'"`));
      expect(checks, "version", "SKIP", /needs a local backup/);
    }
    // S3 keys: status reads them from the environment only.
    writeLockFile(node.dir, { backend_url: "s3://bucket/node?region=eu-1" });
    assert(
      find(await runChecks(node.dir, GOOD_SYSTEM), "backend").message.endsWith(
        `"AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… cln-backup status ` +
          `'s3://bucket/node?region=eu-1'" (the keys in backup-s3.credentials)`,
      ),
    );
    // A server that takes the node's credential (wire v2) takes it from status too.
    writeLockFile(node.dir, { backend_url: "socket:backup.example.org:8700" });
    Deno.writeTextFileSync(`${node.dir}/backup.credential`, "{}", { mode: 0o600 });
    assert(
      find(await runChecks(node.dir, GOOD_SYSTEM), "backend").message.includes(
        `"CLN_BACKUP_CREDENTIAL='${node.dir}/backup.credential' cln-backup status ` +
          `'socket:backup.example.org:8700'"`,
      ),
    );
  }));

Deno.test("doctor: backup.key beside a server's backup: over wire v2 it may be encrypted, over v1 never", () =>
  withNode(async (node) => {
    writeLockFile(node.dir, { backend_url: "socket:backup.example.org:8700" });
    const check = () => runChecks(node.dir, GOOD_SYSTEM);
    writeKeyFile(node.dir, await DataKey.generate());
    expect(await check(), "backup.key", "FAIL", /takes plain backups only/);
    const credential = `${node.dir}/backup.credential`;
    Deno.writeTextFileSync(credential, JSON.stringify({ node: "n", key: "ab".repeat(32) }), {
      mode: 0o600,
    });
    expect(
      await check(),
      "backup.key",
      "OK",
      /holds a key, mode 0600, for socket:.*the plugin checks it against the backup/,
    );
    Deno.chmodSync(`${node.dir}/${KEY_FILE}`, 0o644);
    expect(await check(), "backup.key", "FAIL", /read by other users \(mode 0644\)/);
    Deno.removeSync(`${node.dir}/${KEY_FILE}`);
    expect(await check(), "backup.key", "OK", /none: .* is plain/);
  }));

Deno.test("doctor: a remote destination's keys or credential beside backup.lock", () =>
  withNode(async (node) => {
    const check = () => runChecks(node.dir, GOOD_SYSTEM);
    expect(await check(), "credentials", "OK", /none needed: no remote destination/);
    writeLockFile(node.dir, { backend_url: node.url, mirror_urls: ["s3://bucket/node"] });
    const keys = `${node.dir}/backup-s3.credentials`;
    expect(
      await check(),
      "credentials",
      "FAIL",
      /reads its S3 keys from ".*" only, and there is none/,
    );
    Deno.writeTextFileSync(
      keys,
      "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
      { mode: 0o600 },
    );
    expect(await check(), "credentials", "OK", /backup-s3.credentials holds keys/);
    Deno.chmodSync(keys, 0o644);
    expect(
      await check(),
      "credentials",
      "FAIL",
      /may be read by other users \(mode 0644\): run chmod 600 "/,
    );
    Deno.removeSync(keys);
    writeLockFile(node.dir, { backend_url: node.url, async_urls: ["s3://bucket/node"] });
    expect(
      await check(),
      "credentials",
      "FAIL",
      /reads its S3 keys from ".*" only, and there is none/,
    );

    writeLockFile(node.dir, { backend_url: "socket:backup.example.org:8700" });
    expect(await check(), "credentials", "WARN", /wire v1 .*no authentication.*server add-node/);
    const credential = `${node.dir}/backup.credential`;
    const line = JSON.stringify({ node: "n1", key: "ab".repeat(32) });
    Deno.writeTextFileSync(credential, line, { mode: 0o600 });
    expect(await check(), "credentials", "OK", /backup.credential holds this node's key/);
    Deno.chmodSync(credential, 0o640);
    expect(
      await check(),
      "credentials",
      "FAIL",
      /may be read by other users \(mode 0640\): run chmod 600 "/,
    );
  }));

Deno.test("doctor: a socket+tls URL's CA file must be readable by lightningd's user and hold a certificate", () =>
  withNode(async (node) => {
    const ca = `${node.base}/ca.pem`;
    const url = `socket+tls:backup.example.org:8700?ca=${ca}`;
    writeLockFile(node.dir, { backend_url: url });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "backend",
      "FAIL",
      /ca= names.*cannot read ".*ca\.pem"/,
    );
    Deno.writeTextFileSync(ca, "not a certificate\n");
    expect(await runChecks(node.dir, GOOD_SYSTEM), "backend", "FAIL", /holds no PEM certificate/);
    Deno.writeTextFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    expect(await runChecks(node.dir, GOOD_SYSTEM), "backend", "WARN", /reads local files only/);
    // lightningd's user (the database's owner) is not the file's: as root, make it another.
    if (Deno.uid() === 0) Deno.chownSync(`${node.dir}/lightningd.sqlite3`, 4321, 4321);
    Deno.chmodSync(ca, Deno.uid() === 0 ? 0o600 : 0o200);
    if (Deno.uid() === 0) {
      // The temporary directory holding it is private to its owner too.
      expect(
        await runChecks(node.dir, GOOD_SYSTEM),
        "backend",
        "FAIL",
        /is not searchable by uid 4321/,
      );
      Deno.chmodSync(node.base, 0o755);
    }
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "backend",
      "FAIL",
      /ca\.pem" is not readable by uid/,
    );
  }));

Deno.test("doctor: an s3 URL's CA file is checked as a socket+tls URL's is", () =>
  withNode(async (node) => {
    const ca = `${node.base}/home-ca.pem`;
    writeLockFile(node.dir, {
      backend_url: `s3://bucket/node?endpoint=https://minio.home:9000&ca=${ca}`,
    });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "backend",
      "FAIL",
      /ca= names.*cannot read ".*home-ca\.pem"/,
    );
    Deno.writeTextFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    expect(await runChecks(node.dir, GOOD_SYSTEM), "backend", "WARN", /reads local files only/);
  }));

Deno.test("doctor: the backup's version against the database's", async () => {
  // One ahead: a change stored but never committed; the plugin rewinds it.
  await withNode(async (node) => {
    const backend = FileBackend.open(node.url, node.backupPath);
    await backend.append(RESTART[0]);
    backend.close();
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "OK",
      /at 11, the backup at 12.*rewind/,
    );
    const more = FileBackend.open(node.url, node.backupPath);
    await more.append(RESTART[1]);
    more.close();
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "FAIL",
      /older than the backup.*restore/,
    );
  });
  // Behind: the node ran without the plugin.
  await withNode(async (node) => {
    Deno.removeSync(node.backupPath, { recursive: true });
    await makeBackup(node.backupPath, FRESH_START.slice(0, 5));
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "FAIL",
      // The init to run, whole: init alone is a usage error.
      new RegExp(
        `at version 11 but the backup only at \\d+: the node ran without the plugin.*` +
          `"cln-backup init --lightning-dir '${node.dir}' <url>"`,
      ),
    );
    // No database: fine for an empty backup, a restore to do for any other.
    Deno.removeSync(`${node.dir}/lightningd.sqlite3`);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "FAIL",
      /no lightningd\.sqlite3.*restore/,
    );
    Deno.removeSync(node.backupPath, { recursive: true });
    await makeBackup(node.backupPath, []);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "version", "OK", /no lightningd\.sqlite3 yet/);
  });
});

Deno.test("doctor: an encrypted node that ran without the plugin is told an init --encrypt", async () => {
  await withNode(async (node) => {
    // A plain init is refused beside the key file it leaves: the advice must run as printed.
    Deno.removeSync(node.backupPath, { recursive: true });
    writeKeyFile(node.dir, await makeEncryptedBackup(node.backupPath));
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "FAIL",
      new RegExp(
        `the node ran without the plugin.*move the backup, backup\\.lock and backup\\.key aside ` +
          `and run "cln-backup init --lightning-dir '${node.dir}' <url> --encrypt"`,
      ),
    );
  });
});

Deno.test("doctor: the database a wallet= line names is the one compared; a PostgreSQL wallet fails alone", async () => {
  await withNode(async (node) => {
    // The database on another disk, as the config says: the node's directory holds none.
    Deno.mkdirSync(`${node.base}/ssd`);
    Deno.renameSync(`${node.dir}/lightningd.sqlite3`, `${node.base}/ssd/node.sqlite3`);
    Deno.writeTextFileSync(`${node.base}/config`, "wallet=sqlite3://../ssd/node.sqlite3\n");
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "OK",
      /^backup and node\.sqlite3 in step at version 11$/,
    );
    Deno.renameSync(`${node.base}/ssd/node.sqlite3`, `${node.base}/ssd/gone.sqlite3`);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "FAIL",
      new RegExp(
        `^no node\\.sqlite3 in "${node.base}/ssd" but the backup holds version 11: restore ` +
          `it with "cln-backup restore '${node.url}' '${node.base}/ssd/node\\.sqlite3'"`,
      ),
    );
    Deno.writeTextFileSync(`${node.base}/config`, "wallet=postgres://cln:pw@db/cln\n");
    assertEquals(await runChecks(node.dir, GOOD_SYSTEM), [{
      level: "FAIL",
      name: "database",
      message: `Cannot check: ${node.base}/config sets wallet= to a postgres database: ` +
        "lightningd hands plugins the changes of a SQLite database only (sqlite3://), so " +
        "cln-backup cannot back up this node's database: back it up with its own database's " +
        "tools",
    }]);
  });
});

Deno.test("doctor: a database it cannot read says why, and what to do", async () => {
  // lightningd killed in the middle of a write: a hot journal only a writer may roll back.
  await withNode(async (node) => {
    leaveHotJournal(node.dir);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "FAIL",
      /^".*\/lightningd\.sqlite3" has a hot journal \(".*-journal"\): lightningd stopped in the middle of a write, .*: start lightningd and stop it/,
    );
  });
  await withNode(async (node) => {
    damageDatabase(node.dir);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "version",
      "FAIL",
      /^".*\/lightningd\.sqlite3" is damaged \(database disk image is malformed\), .*restore the database from the node's backup/,
    );
  });
});

Deno.test("doctor: the config must load the plugin as important-plugin", () =>
  withNode(async (node) => {
    const config = `${node.dir}/config`;
    Deno.writeTextFileSync(config, `plugin=${node.launcher}\n`);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "config", "FAIL", /plugin=.*important-plugin=/);
    Deno.writeTextFileSync(config, "network=regtest\n");
    expect(await runChecks(node.dir, GOOD_SYSTEM), "config", "FAIL", /does not load the plugin/);
    Deno.removeSync(config);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "config", "FAIL", /no config file/);
    Deno.writeTextFileSync(`${node.base}/config`, `important-plugin = ${node.launcher}\n`);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "config", "OK");
    Deno.writeTextFileSync(
      `${node.base}/config`,
      `important-plugin=${node.launcher}\nimportant-plugin=/opt/plugins/backup/backup.py\n`,
    );
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "config",
      "FAIL",
      /Python backup plugin.*remove/,
    );
    // The Python README's other way: in the plugin directory, which lightningd loads unasked.
    Deno.writeTextFileSync(`${node.base}/config`, `important-plugin=${node.launcher}\n`);
    const python = `${node.base}/src/plugins/backup/backup.py`;
    Deno.mkdirSync(dirname(python), { recursive: true });
    Deno.writeTextFileSync(python, "#!/usr/bin/env python3\n", { mode: 0o755 });
    Deno.mkdirSync(`${node.base}/plugins`);
    for (const name of ["backup.py", "plugins-repo-backup"]) {
      const link = `${node.base}/plugins/${name}`;
      Deno.symlinkSync(name === "backup.py" ? python : dirname(python), link);
      expect(
        await runChecks(node.dir, GOOD_SYSTEM),
        "config",
        "FAIL",
        new RegExp(
          `^"${link}${name === "backup.py" ? "" : "/backup.py"}" loads the Python backup plugin ` +
            `from lightningd's plugin directory at every start: remove it`,
        ),
      );
      Deno.removeSync(link);
    }
    expect(await runChecks(node.dir, GOOD_SYSTEM), "config", "OK");
  }));

Deno.test("doctor: the launcher must exist, run, and name a deno that lasts", () =>
  withNode(async (node) => {
    Deno.chmodSync(node.launcher, 0o644);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "launcher", "FAIL", /not executable.*chmod 755/);
    const url = node.url;
    writeLauncher(launchPlan({ lightningDir: node.dir, backendUrl: url, deno: "/gone/deno" }));
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "launcher",
      "FAIL",
      /"\/gone\/deno", which is not/,
    );
    const npx = `${node.base}/.npm/_npx/0123abcd/node_modules/deno/deno`;
    Deno.mkdirSync(dirname(npx), { recursive: true });
    Deno.writeTextFileSync(npx, "#!/bin/sh\n", { mode: 0o755 });
    writeLauncher(launchPlan({ lightningDir: node.dir, backendUrl: url, deno: npx }));
    let checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(checks, "launcher", "WARN", /npx's cache.*npm install --no-save deno@2\.9\.6/);
    expect(
      checks,
      "permissions",
      "OK",
      /^the plugin may read only backup\.lock, backup\.key, the file backups and its own code, write only the file backups, and connect nowhere$/,
    );
    Deno.removeSync(node.launcher);
    checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(checks, "launcher", "FAIL", /is missing, so lightningd cannot start the plugin/);
    expect(checks, "permissions", "SKIP");
    // The compiled plugin, when the config names it, has its permissions built in.
    const binary = `${node.dir}/${COMPILED_PLUGIN_NAME}`;
    Deno.writeTextFileSync(binary, "", { mode: 0o755 });
    Deno.writeTextFileSync(`${node.dir}/config`, `important-plugin=${binary}\n`);
    checks = await runChecks(node.dir, GOOD_SYSTEM);
    expect(checks, "config", "OK");
    expect(checks, "launcher", "OK", /compiled plugin/);
    expect(checks, "permissions", "SKIP", /compile:plugin again/);
  }));

Deno.test("doctor: the launcher's permissions must match backup.lock", () =>
  withNode(async (node) => {
    const other = `${node.base}/backup2`;
    await makeBackup(other, FRESH_START);
    writeLockFile(node.dir, { backend_url: `file://${other}` });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "permissions",
      "FAIL",
      /lacks --allow-read=[^ ,]*backup2 --allow-write=[^ ,]*backup2 for .*backup\.lock changed after init/,
    );
    // A destination taken out of backup.lock by hand: the launcher grants a path too many, and
    // lacks none.
    const good = Deno.readTextFileSync(node.launcher);
    writeLockFile(node.dir, { backend_url: node.url });
    Deno.writeTextFileSync(
      node.launcher,
      good.replaceAll(`${node.backupPath},`, `${node.backupPath},${other},`)
        .replaceAll(`${node.backupPath}'`, `${node.backupPath},${other}'`),
    );
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "permissions",
      "WARN",
      /^the launcher also passes --allow-read=[^ ,]*backup2 --allow-write=[^ ,]*backup2: the plugin needs only/,
    );
    Deno.writeTextFileSync(node.launcher, good);
    const text = Deno.readTextFileSync(node.launcher);
    Deno.writeTextFileSync(
      node.launcher,
      text.replace("'--no-prompt'", "'--no-prompt' '--allow-env'"),
    );
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "permissions",
      "WARN",
      /also passes --allow-env/,
    );
    // An earlier init's launcher, without the compaction worker's lower priority: a warning.
    Deno.writeTextFileSync(node.launcher, text.replace(" '--allow-sys=setPriority'", ""));
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "permissions",
      "WARN",
      /lacks --allow-sys=setPriority/,
    );
    // Nor the runtime flags that keep the plugin's memory flat.
    const older = text.replace(` '${RUNTIME_FLAGS[0]}'`, "");
    assert(older !== text);
    Deno.writeTextFileSync(node.launcher, older);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "permissions",
      "WARN",
      /lacks --v8-flags=--max-semi-space-size=2 \(written by an earlier init\?\), so the plugin keeps more memory after compactions: add it/,
    );
    Deno.writeTextFileSync(node.launcher, older.replace(" '--allow-sys=setPriority'", ""));
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "permissions",
      "WARN",
      /lacks --v8-flags=\S+ --allow-sys=setPriority .*more memory after compactions, and the compaction worker runs at the hooks' priority: add them/,
    );
  }));

Deno.test("doctor: hsm_secret must exist with mode 0400", () =>
  withNode(async (node) => {
    const secret = `${node.dir}/hsm_secret`;
    Deno.chmodSync(secret, 0o644);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "hsm_secret",
      "WARN",
      /mode 0644.*chmod 400.*useless/,
    );
    Deno.removeSync(secret);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "hsm_secret",
      "WARN",
      /no hsm_secret.*back it up/,
    );
    // Warnings alone do not fail doctor.
    assertEquals(await doctor(["--lightning-dir", node.dir], new BufferedOutput(), GOOD_SYSTEM), 0);
  }));

/** The node's database size, and a system with `free` bytes that notes each path asked in `asked`. */
function freeSpace(
  node: Setup,
): { size: number; asked: string[]; room: (free: number) => DoctorSystem } {
  const size = Deno.statSync(`${node.dir}/lightningd.sqlite3`).size;
  const asked: string[] = [];
  const room = (free: number): DoctorSystem => ({
    ...GOOD_SYSTEM,
    freeBytes: (path) => {
      asked.push(path);
      return free;
    },
  });
  return { size, asked, room };
}

Deno.test("doctor: free space at the backup against the database's size", () =>
  withNode(async (node) => {
    const { size, asked, room } = freeSpace(node);
    expect(
      await runChecks(node.dir, room(size - 1)),
      "free space",
      "FAIL",
      /cannot hold a snapshot/,
    );
    expect(await runChecks(node.dir, room(size + 1)), "free space", "WARN", /less than twice/);
    expect(await runChecks(node.dir, room(3 * size)), "free space", "OK", /free at .*backup/);
    assertEquals(asked, [node.backupPath, node.backupPath, node.backupPath]);
    assertEquals(await doctor(["--lightning-dir", node.dir], new BufferedOutput(), room(0)), 1);
    assert(realSystem.freeBytes(node.backupPath) > 0);
  }));

Deno.test("doctor: free space for an S3 or encrypted server backup's compaction in the lightning dir", () =>
  withNode(async (node) => {
    const { size, asked, room } = freeSpace(node);
    writeLockFile(node.dir, { backend_url: "socket:backup.example.org:8700" });
    expect(await runChecks(node.dir, room(0)), "free space", "OK", /remote backup/);
    assertEquals(asked, []);
    const scratch = /the plugin's compaction rebuilds the database in cln-backup-scratch there/;
    for (const url of ["s3://bucket/node?region=eu-1", "socket:backup.example.org:8700"]) {
      if (url.startsWith("socket:")) {
        // An encrypted backup on a wire v2 server: only the node can compact it, in its scratch.
        Deno.writeTextFileSync(`${node.dir}/${CREDENTIAL_NAME}`, "credential");
        Deno.writeTextFileSync(`${node.dir}/${KEY_FILE}`, "key");
      }
      writeLockFile(node.dir, { backend_url: url });
      asked.length = 0;
      expect(await runChecks(node.dir, room(size - 1)), "free space", "FAIL", scratch);
      expect(await runChecks(node.dir, room(size + 1)), "free space", "WARN", scratch);
      expect(await runChecks(node.dir, room(3 * size)), "free space", "OK", /free at .*regtest"/);
      assertEquals(asked, [node.dir, node.dir, node.dir]);
    }
  }));

Deno.test("doctor: free space for an S3 copy's compaction too, beside a file backup's", () =>
  withNode(async (node) => {
    const size = Deno.statSync(`${node.dir}/lightningd.sqlite3`).size;
    // Room at the backup, too little in the lightning dir, where the S3 copy is compacted.
    const room = (atNode: number): DoctorSystem => ({
      ...GOOD_SYSTEM,
      freeBytes: (path) => path === node.dir ? atNode : 3 * size,
    });
    writeLockFile(node.dir, {
      backend_url: node.url,
      async_urls: ["s3://bucket/node?region=eu-1"],
    });
    const scratch = /the plugin's compaction rebuilds the database in cln-backup-scratch there/;
    expect(await runChecks(node.dir, room(size - 1)), "free space", "FAIL", scratch);
    expect(await runChecks(node.dir, room(size + 1)), "free space", "WARN", scratch);
    expect(
      await runChecks(node.dir, room(3 * size)),
      "free space",
      "OK",
      /free at .*backup", the database is .*; .* free at .*regtest"/,
    );
  }));

Deno.test("doctor: free space at each file copy too: a full mirror stops the node, a full async copy fails", () =>
  withNode(async (node) => {
    const size = Deno.statSync(`${node.dir}/lightningd.sqlite3`).size;
    const copy = `${node.base}/copy-disk`;
    const url = await makeBackup(copy, FRESH_START);
    // Room at the backup, `atCopy` at the copy's disk.
    const room = (atCopy: number): DoctorSystem => ({
      ...GOOD_SYSTEM,
      freeBytes: (path) => path === copy ? atCopy : 3 * size,
    });
    writeLockFile(node.dir, { backend_url: node.url, mirror_urls: [url] });
    expect(
      await runChecks(node.dir, room(size - 1)),
      "free space",
      "FAIL",
      new RegExp(`free at "${copy}", .*cannot hold a snapshot of it, and a full disk stops`),
    );
    expect(await runChecks(node.dir, room(size + 1)), "free space", "WARN", /less than twice/);
    writeLockFile(node.dir, {
      backend_url: node.url,
      mirror_urls: [url],
      mirror_failure: "degrade",
    });
    expect(
      await runChecks(node.dir, room(size - 1)),
      "free space",
      "FAIL",
      /full, it fails and gets no more changes \(mirror_failure "degrade"\), and the node goes on without it until its next start, which it stops while backup\.lock names it: free space there/,
    );
    writeLockFile(node.dir, { backend_url: node.url, async_urls: [url] });
    expect(
      await runChecks(node.dir, room(size - 1)),
      "free space",
      "WARN",
      new RegExp(
        `free at "${copy}", .*: the async copy there cannot hold a snapshot of it: full, it ` +
          `fails, and the backup, which keeps what the copy lacks, grows meanwhile: free space ` +
          `there or move the copy to a larger disk`,
      ),
    );
    expect(
      await runChecks(node.dir, room(3 * size)),
      "free space",
      "OK",
      new RegExp(`free at .*backup", the database is .*; .* free at "${copy}"`),
    );
  }));

Deno.test("doctor: a copy that is a v1 file, which the plugin does not append to, says so", () =>
  withNode(async (node) => {
    const v1 = `${node.base}/copy.dbak`;
    Deno.copyFileSync(PRE_4090_BACKUP, v1);
    const url = `file://${v1}`;
    writeLockFile(node.dir, { backend_url: node.url, mirror_urls: [url] });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "FAIL",
      new RegExp(
        `^${url} is a v1 backup of the Python plugin, which the plugin does not append to: it ` +
          `stops the node at its start: with lightningd stopped, remove it from backup\.lock ` +
          `and add a new copy with "cln-backup mirror NEW_URL --lightning-dir .*"$`,
      ),
    );
    writeLockFile(node.dir, { backend_url: node.url, async_urls: [url] });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "WARN",
      /is a v1 backup of the Python plugin, which the plugin does not append to: it gets no changes: .* --async"$/,
    );
  }));

Deno.test("doctor: free space says every place short of room, not only the first", () =>
  withNode(async (node) => {
    const size = Deno.statSync(`${node.dir}/lightningd.sqlite3`).size;
    const copy = `${node.base}/copy-disk`;
    const url = await makeBackup(copy, FRESH_START);
    writeLockFile(node.dir, { backend_url: node.url, async_urls: [url] });
    // The backup's disk a little short, the async copy's full: the second is the worse news.
    const system: DoctorSystem = {
      ...GOOD_SYSTEM,
      freeBytes: (path) => path === copy ? size - 1 : size + 1,
    };
    expect(
      await runChecks(node.dir, system),
      "free space",
      "WARN",
      new RegExp(
        `free at .*backup", .*: less than twice the database.*; .* free at "${copy}", .*: the ` +
          `async copy there cannot hold a snapshot of it`,
      ),
    );
  }));

Deno.test("doctor: the backup on the database's filesystem is a warning", () =>
  withNode(async (node) => {
    // Here both really are in the same temporary directory.
    expect(
      await runChecks(node.dir, realSystem),
      "filesystem",
      "WARN",
      /same filesystem.*another disk/,
    );
    expect(await runChecks(node.dir, GOOD_SYSTEM), "filesystem", "OK");
  }));

Deno.test("doctor: a plain set of several destinations is not told to upgrade --encrypt", () =>
  withNode(async (node) => {
    // upgrade --encrypt refuses a backup.lock naming copies: a new encrypted set-up is the way.
    writeLockFile(node.dir, { backend_url: node.url, async_urls: ["s3://bucket/copy"] });
    const { level, message } = find(await runChecks(node.dir, GOOD_SYSTEM), "backup.key");
    assertEquals(level, "OK", message);
    assert(!message.includes("cln-backup upgrade"), message);
    assertMatch(message, /not encrypted.*"cln-backup init --lightning-dir .* --encrypt"/);
  }));

Deno.test("doctor: an encrypted backup on the database's filesystem is not told to add a mirror", () =>
  withNode(async (node) => {
    // mirror refuses an encrypted backup (no copy of one is made yet): the way out is a new
    // encrypted backup elsewhere.
    Deno.removeSync(node.backupPath, { recursive: true });
    writeKeyFile(node.dir, await makeEncryptedBackup(node.backupPath));
    const { level, message } = find(await runChecks(node.dir, realSystem), "filesystem");
    assertEquals(level, "WARN", message);
    assert(!message.includes("mirror <url>"), message);
    assertMatch(
      message,
      new RegExp(
        `one disk failure loses both: .*move backup\\.lock and backup\\.key aside and run ` +
          `"cln-backup init --lightning-dir '${node.dir}' <url> --encrypt"`,
      ),
    );
  }));

Deno.test("doctor: the filesystem check judges every destination: one elsewhere saves the set", () =>
  withNode(async (node) => {
    Deno.mkdirSync(`${node.base}/mnt`);
    const copy = await makeBackup(`${node.base}/mnt/copy`, FRESH_START);
    writeLockFile(node.dir, { backend_url: node.url, async_urls: [copy] });
    const oneDisk: DoctorSystem = { ...GOOD_SYSTEM, device: () => 1 };
    // The backup beside the database, its async copy on another disk.
    expect(
      await runChecks(node.dir, { ...GOOD_SYSTEM, device: otherDiskAt(`${node.base}/mnt`) }),
      "filesystem",
      "OK",
      new RegExp(
        `^"${node.backupPath}" is on the database's filesystem, but ${copy} is not: one disk ` +
          `failure leaves it \\(an async copy, perhaps behind: see "The risk"`,
      ),
    );
    expect(
      await runChecks(node.dir, oneDisk),
      "filesystem",
      "WARN",
      new RegExp(
        `^the backup "${node.backupPath}" and its copy "${node.base}/mnt/copy" are on the same ` +
          `filesystem as the node's database .*: one disk failure loses them all`,
      ),
    );
    // A remote mirror saves it too, whatever the disks.
    writeLockFile(node.dir, { backend_url: node.url, mirror_urls: ["s3://bucket/node1"] });
    expect(
      await runChecks(node.dir, oneDisk),
      "filesystem",
      "OK",
      /is on the database's filesystem, but s3:\/\/bucket\/node1 is not: one disk failure leaves it$/,
    );
  }));

Deno.test("doctor: a plain backup others may read is a warning; an encrypted one is not", () =>
  withNode(async (node) => {
    expect(await runChecks(node.dir, GOOD_SYSTEM), "privacy", "OK", /owner only/);
    Deno.chmodSync(node.backupPath, 0o755);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "privacy",
      "WARN",
      new RegExp(`mode 0755\\): run "chmod 700 '${node.backupPath}'", or encrypt it`),
    );
    const encrypted = `${node.base}/encrypted`;
    await makeEncryptedBackup(encrypted);
    Deno.chmodSync(encrypted, 0o755);
    writeLockFile(node.dir, { backend_url: `file://${encrypted}` });
    expect(await runChecks(node.dir, GOOD_SYSTEM), "privacy", "OK", /encrypted/);
  }));

Deno.test("doctor: a plain file copy (--mirror, --async) others may read is a warning too", () =>
  withNode(async (node) => {
    const copy = `${node.base}/backup-copy`;
    const url = await makeBackup(copy, FRESH_START);
    Deno.chmodSync(copy, 0o700);
    for (const list of ["mirror_urls", "async_urls"]) {
      writeLockFile(node.dir, { backend_url: node.url, [list]: [url] });
      expect(await runChecks(node.dir, GOOD_SYSTEM), "privacy", "OK", /owner only/);
      Deno.chmodSync(copy, 0o755);
      expect(
        await runChecks(node.dir, GOOD_SYSTEM),
        "privacy",
        "WARN",
        new RegExp(`"${copy}" .*mode 0755\\): run "chmod 700 '${copy}'"`),
      );
      Deno.chmodSync(copy, 0o700);
    }
  }));

/** `lock` with each file copy there now tied to its backup id, as mirror and init record it. */
function tiedLock(lock: LockFile): LockFile {
  const { sync, async } = lockDestinations(lock);
  const ids = [...sync.slice(1), ...async].flatMap((url) => {
    const parsed = parseBackupUrl(url);
    if (parsed.scheme !== "file") return [];
    return [[url, formatBackupId(readChain(parsed.path).backupId)]];
  });
  return { ...lock, backup_ids: Object.fromEntries(ids) };
}

/** Writes `dir`'s backup.lock as {@linkcode tiedLock} makes it: its file copies tied. */
function writeTiedLock(dir: string, lock: LockFile = readLockFile(dir)): void {
  writeLockFile(dir, tiedLock(lock));
}

Deno.test("doctor: a file mirror missing or lagging fails, as the plugin will; an async copy behind is fine", () =>
  withNode(async (node) => {
    const copy = `${node.base}/backup-copy`;
    const url = `file://${copy}`;
    writeLockFile(node.dir, { backend_url: node.url, mirror_urls: [url] });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "FAIL",
      new RegExp(
        `^${url}: nothing at "${copy}": the plugin stops the node at ` +
          `its start: mount it or fix the URL; or, with lightningd stopped, remove it from ` +
          `backup\\.lock and add a new copy with "cln-backup mirror NEW_URL --lightning-dir `,
      ),
    );
    // A mirror that failed under mirror_failure "degrade", and got no more changes.
    await makeBackup(copy, FRESH_START.slice(0, 5));
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "FAIL",
      new RegExp(`^${url} at \\d+ lacks changes ${node.url} holds at 11: the plugin stops `),
    );
    // One change ahead: stored, then the node stopped; the plugin drops it at its start.
    Deno.removeSync(copy, { recursive: true });
    await makeBackup(copy, [...FRESH_START, RESTART[0]]);
    writeTiedLock(node.dir);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "OK", new RegExp(`${url} at 12`));
    // An async copy behind catches up from the primary.
    Deno.removeSync(copy, { recursive: true });
    await makeBackup(copy, FRESH_START.slice(0, 5));
    writeTiedLock(node.dir, { backend_url: node.url, async_urls: [url] });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "OK",
      /async, \d+ behind: it catches up/,
    );
  }));

Deno.test("doctor: a copy without its backup id in backup.lock warns with the command that ties it; one holding another backup than its tie is refused, as the plugin refuses it", () =>
  withNode(async (node) => {
    const copy = `${node.base}/backup-copy`;
    const url = await makeBackup(copy, FRESH_START);
    const remote = "s3://bucket/copy";
    for (const list of ["mirror_urls", "async_urls"]) {
      writeLockFile(node.dir, { backend_url: node.url, [list]: [url] });
      expect(
        await runChecks(node.dir, GOOD_SYSTEM),
        "copies",
        "WARN",
        new RegExp(
          `^${url} is not tied to its backup id in backup\\.lock .*: the plugin cannot tell ` +
            `another backup found there .* from it, .*: once you know it holds this node's ` +
            `copy, tie it with "cln-backup mirror '${url}' --lightning-dir '${node.dir}'"$`,
        ),
      );
      writeTiedLock(node.dir);
      expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "OK");
    }
    // A mount swapped: another backup where the copy was.
    const tiedTo = formatBackupId(readChain(copy).backupId);
    Deno.removeSync(copy, { recursive: true });
    await makeBackup(copy, FRESH_START);
    const other = formatBackupId(readChain(copy).backupId);
    for (
      const [list, level, then] of [
        ["mirror_urls", "FAIL", "the plugin stops the node at its start"],
        ["async_urls", "WARN", "the node goes on without this async copy"],
      ]
    ) {
      writeLockFile(node.dir, {
        backend_url: node.url,
        [list]: [url],
        backup_ids: { [url]: tiedTo },
      });
      expect(
        await runChecks(node.dir, GOOD_SYSTEM),
        "copies",
        level as "FAIL" | "WARN",
        new RegExp(
          `^${url}: it is backup ${other}, not ${tiedTo}, the one backup\\.lock ties to it .*` +
            `--lightning-dir '${node.dir}'.*"; ${then}`,
        ),
      );
    }
    // A remote copy is tied too, unless on a Python server (wire v1), whose backup has no id.
    writeLockFile(node.dir, { backend_url: node.url, async_urls: [remote] });
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "WARN", /s3:.* is not tied/);
    writeLockFile(node.dir, {
      backend_url: node.url,
      async_urls: [remote],
      backup_ids: { [remote]: tiedTo },
    });
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "OK", /s3:.* is remote/);
    writeLockFile(node.dir, { backend_url: node.url, async_urls: ["socket:backup.example:1234"] });
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "OK", /socket:.* is remote/);
  }));

Deno.test("doctor: with a remote backend_url, each copy's tie is checked all the same", () =>
  withNode(async (node) => {
    const copy = `${node.base}/backup-copy`;
    const url = await makeBackup(copy, FRESH_START);
    const primary = "s3://bucket/primary";
    writeLockFile(node.dir, { backend_url: primary, async_urls: [url] });
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "WARN", /^file:.* is not tied/);
    writeLockFile(node.dir, {
      backend_url: primary,
      async_urls: [url],
      backup_ids: { [url]: "ab".repeat(16) },
    });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "WARN",
      new RegExp(`^${url}: it is backup [0-9a-f]{32}, not ${"ab".repeat(16)}, the one`),
    );
    writeTiedLock(node.dir, { backend_url: primary, mirror_urls: [url] });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "OK",
      new RegExp(
        `^${url} at \\d+; each tied to its backup id: compare their versions with ${primary}'s ` +
          `\\("cln-backup status '${primary}'"\\)$`,
      ),
    );
  }));

Deno.test("doctor: an async copy behind a compaction of the primary cannot catch up, and says so", () =>
  withNode(async (node) => {
    const copy = `${node.base}/backup-copy`;
    const url = await makeBackup(copy, FRESH_START.slice(0, 5));
    const at = describeBackup(url).lastVersion;
    writeLockFile(node.dir, { backend_url: node.url, async_urls: [url] });
    // `compact` with lightningd stopped does not know the copies: it folds what the copy lacks.
    const output = new BufferedOutput();
    assertEquals(await compact([node.url], output), 0, output.stderr.join("\n"));
    const snapshot = describeBackup(node.url).snapshots.at(-1)!;
    assert(snapshot > at);
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "WARN",
      new RegExp(
        `^${url} at ${at} lacks changes ${node.url} folded into its snapshot at ${snapshot}, ` +
          `which a copy catches up from: it cannot catch up, and gets no changes: with ` +
          `lightningd stopped, remove it from backup\\.lock and add a new copy with ` +
          `"cln-backup mirror NEW_URL --lightning-dir .* --async"$`,
      ),
    );
    // One at that snapshot, its last change on top of it, drops that change when it opens.
    Deno.removeSync(copy, { recursive: true });
    await makeBackup(copy, FRESH_START.filter((c) => c.version <= snapshot));
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "WARN", /cannot catch up/);
    Deno.removeSync(copy, { recursive: true });
    await makeBackup(copy, FRESH_START.filter((c) => c.version <= snapshot + 1));
    writeTiedLock(node.dir);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "OK");
  }));

Deno.test("doctor: a plain copy of an encrypted backup is refused by the plugin, which has its key", () =>
  withNode(async (node) => {
    Deno.removeSync(node.backupPath, { recursive: true });
    writeKeyFile(node.dir, await makeEncryptedBackup(node.backupPath));
    const url = await makeBackup(`${node.base}/backup-copy`, []);
    const check = (lock: LockFile) =>
      copiesCheck({
        dir: node.dir,
        database: `${node.dir}/lightningd.sqlite3`,
        user: undefined,
        lock,
        description: describeBackup(node.url),
      });
    const [level, message] = check({ backend_url: node.url, async_urls: [url] });
    assertEquals(level, "WARN", message);
    assertMatch(
      message,
      new RegExp(
        `^${url} is not encrypted, but "${node.dir}/backup\\.key" holds a key, which the ` +
          `plugin opens every destination with: it refuses this async copy, which gets no ` +
          `changes: with lightningd stopped, remove it from backup\\.lock \\(an encrypted ` +
          `backup has no copies yet\\)$`,
      ),
    );
    assertEquals(check({ backend_url: node.url, mirror_urls: [url] })[0], "FAIL");
    // Without the key file, an encrypted copy is the one refused.
    Deno.removeSync(`${node.dir}/${KEY_FILE}`);
    Deno.removeSync(node.backupPath, { recursive: true });
    await makeBackup(node.backupPath, []);
    Deno.removeSync(`${node.base}/backup-copy`, { recursive: true });
    await makeEncryptedBackup(`${node.base}/backup-copy`);
    assertMatch(
      check({ backend_url: node.url, async_urls: [url] })[1],
      /is encrypted, but no .*backup\.key.* holds its key/,
    );
  }));

Deno.test("doctor: changes a running node stores in the backup and its mirror while doctor reads are no disagreement", () =>
  withNode(async (node) => {
    const copy = `${node.base}/backup-copy`;
    const url = await makeBackup(copy, FRESH_START);
    // The backup as the backend check read it; then the node stored two changes in both.
    const lock = tiedLock({ backend_url: node.url, mirror_urls: [url] });
    const found = {
      dir: node.dir,
      database: `${node.dir}/lightningd.sqlite3`,
      user: undefined,
      lock,
      description: describeBackup(node.url),
    };
    for (const path of [node.backupPath, copy]) {
      const backend = FileBackend.open(`file://${path}`, path);
      try {
        for (const change of RESTART.slice(0, 2)) await backend.append(change);
      } finally {
        backend.close();
      }
    }
    assertEquals(copiesCheck(found), ["OK", `${node.url} at 13; ${url} at 13`]);
  }));

Deno.test("doctor: an async copy one change ahead is fine, as the plugin drops that change; two are not", () =>
  withNode(async (node) => {
    const copy = `${node.base}/backup-copy`;
    const url = await makeBackup(copy, [...FRESH_START, RESTART[0]]);
    writeTiedLock(node.dir, { backend_url: node.url, async_urls: [url] });
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "OK", new RegExp(`${url} at 12$`));
    Deno.removeSync(copy, { recursive: true });
    await makeBackup(copy, [...FRESH_START, ...RESTART.slice(0, 2)]);
    writeTiedLock(node.dir);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "WARN", /at 13 is ahead of .* at 11/);
  }));

/** As root, makes uid 4242 lightningd's user: the owner of the node's files, its dir reachable. */
function playNodeUser(node: Setup): void {
  for (const name of ["", "/lightningd.sqlite3", "/hsm_secret", "/backup.lock"]) {
    Deno.chownSync(`${node.dir}${name}`, 4242, 4242);
  }
  Deno.chmodSync(node.base, 0o755);
}

/** A test as lightningd's user (see playNodeUser), where it can play one (PLAYS_NODE_USER). */
function nodeUserTest(name: string, body: (node: Setup) => Promise<void>): void {
  Deno.test({
    name,
    ignore: !PLAYS_NODE_USER,
    fn: () =>
      withNode(async (node) => {
        playNodeUser(node);
        await body(node);
      }),
  });
}

/** Gives `path` and everything in it to uid 4242. */
function chownTree(path: string): void {
  Deno.chownSync(path, 4242, 4242);
  for (const entry of Deno.readDirSync(path)) Deno.chownSync(`${path}/${entry.name}`, 4242, 4242);
}

nodeUserTest("doctor: a backup lightningd's user may write but not reach fails", async (node) => {
  // The backup in a directory of root's, as under /root.
  const hidden = `${node.base}/root-only`;
  Deno.mkdirSync(hidden, { mode: 0o700 });
  const url = await makeBackup(`${hidden}/backup`, FRESH_START);
  chownTree(`${hidden}/backup`);
  writeLockFile(node.dir, { backend_url: url });
  Deno.chownSync(`${node.dir}/backup.lock`, 4242, 4242);
  expect(
    await runChecks(node.dir, GOOD_SYSTEM),
    "backend",
    "FAIL",
    new RegExp(
      `^"${hidden}" is not searchable by uid 4242 .*, so it cannot reach ` +
        `"${hidden}/backup": run "chmod o\\+x '${hidden}'"`,
    ),
  );
  Deno.chmodSync(hidden, 0o711);
  expect(await runChecks(node.dir, GOOD_SYSTEM), "backend", "OK");
});

nodeUserTest(
  "doctor: a backup lightningd's user reaches through a group it is in passes",
  async (node) => {
    // A directory of root's shared with a backup group lightningd's user is a member of.
    const shared = `${node.base}/shared`;
    Deno.mkdirSync(shared);
    Deno.chownSync(shared, 0, 4500);
    Deno.chmodSync(shared, 0o750);
    const url = await makeBackup(`${shared}/backup`, FRESH_START);
    chownTree(`${shared}/backup`);
    writeLockFile(node.dir, { backend_url: url });
    Deno.chownSync(`${node.dir}/backup.lock`, 4242, 4242);
    const member = { ...GOOD_SYSTEM, groupsOf: (uid: number) => uid === 4242 ? [4500] : [] };
    expect(await runChecks(node.dir, member), "backend", "OK");
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "backend",
      "FAIL",
      new RegExp(`^"${shared}" is not searchable by uid 4242 `),
    );
  },
);

nodeUserTest(
  "doctor: a file copy lightningd's user may not write fails, or warns when async",
  async (node) => {
    chownTree(node.backupPath);
    const copy = `${node.base}/backup-copy`;
    const url = await makeBackup(copy, FRESH_START); // root's, as a mirror made as root
    writeLockFile(node.dir, { backend_url: node.url, mirror_urls: [url] });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "FAIL",
      new RegExp(
        `^${url}: "${copy}" is not writable by uid 4242 .*chown -R 4242:4242 '${copy}'.*: ` +
          `until then the plugin stops the node at its start$`,
      ),
    );
    writeLockFile(node.dir, { backend_url: node.url, async_urls: [url] });
    expect(
      await runChecks(node.dir, GOOD_SYSTEM),
      "copies",
      "WARN",
      /is not writable by uid 4242 .*: until then the node goes on without this async copy$/,
    );
    chownTree(copy);
    writeTiedLock(node.dir);
    Deno.chownSync(`${node.dir}/backup.lock`, 4242, 4242);
    expect(await runChecks(node.dir, GOOD_SYSTEM), "copies", "OK");
  },
);

nodeUserTest(
  "doctor: a launcher, Deno or plugin lightningd's user may not run or reach fails",
  async (node) => {
    chownTree(node.backupPath);
    // A Deno and a plugin lightningd's user can reach, wherever this test's own were
    // obtained (npx keeps Deno under root's home; a checkout may be there too): the check
    // looks at them, and runs neither.
    const reachable = `${node.base}/node_modules/deno/deno`;
    Deno.removeSync(reachable);
    Deno.writeTextFileSync(reachable, "#!/bin/sh\n");
    Deno.chmodSync(reachable, 0o755);
    const plugin = `${node.base}/checkout/plugin.ts`;
    Deno.mkdirSync(dirname(plugin));
    Deno.writeTextFileSync(plugin, "");
    const launch = (deno: string) =>
      writeLauncher(launchPlan({ lightningDir: node.dir, backendUrl: node.url, deno, plugin }));
    launch(reachable);
    const check = () => runChecks(node.dir, GOOD_SYSTEM);
    expect(await check(), "launcher", "OK");
    // A checkout in root's home.
    Deno.chmodSync(dirname(plugin), 0o700);
    expect(
      await check(),
      "launcher",
      "FAIL",
      new RegExp(`"${dirname(plugin)}" is not searchable by uid 4242 .*"${plugin}"`),
    );
    Deno.chmodSync(dirname(plugin), 0o755);
    // init run as root under a umask of 077.
    Deno.chmodSync(node.launcher, 0o700);
    expect(
      await check(),
      "launcher",
      "FAIL",
      new RegExp(
        `^lightningd cannot start the plugin: uid 4242 .* may not read and run ` +
          `"${node.launcher}": run "chmod 755 '${node.launcher}'"$`,
      ),
    );
    Deno.chmodSync(node.launcher, 0o755);
    // Deno installed in root's home.
    const home = `${node.base}/root-home`;
    Deno.mkdirSync(home, { mode: 0o700 });
    const deno = `${home}/deno`;
    Deno.symlinkSync(Deno.execPath(), deno);
    launch(deno);
    expect(
      await check(),
      "launcher",
      "FAIL",
      new RegExp(`cannot start the plugin: "${home}" is not searchable by uid 4242 .*"${deno}"`),
    );
  },
);

Deno.test("doctor: disable-plugin or a later clear-plugins unloads the plugin, important or not", () =>
  withNode(async (node) => {
    const config = `${node.dir}/config`;
    const good = Deno.readTextFileSync(config);
    const check = () => runChecks(node.dir, GOOD_SYSTEM);
    // By file name or by path, in either config file, before or after the plugin's line.
    for (const value of ["cln-backup-plugin", node.launcher]) {
      Deno.writeTextFileSync(`${node.base}/config`, `disable-plugin=${value}\n`);
      expect(
        await check(),
        "config",
        "FAIL",
        new RegExp(
          `^${node.base}/config has disable-plugin=${value}, so lightningd does not load the ` +
            `plugin at all, even as important-plugin, and runs without a backup: remove that line$`,
        ),
      );
    }
    Deno.removeSync(`${node.base}/config`);
    Deno.writeTextFileSync(config, `${good}disable-plugin=backup.py\n`);
    expect(await check(), "config", "OK");
    // clear-plugins unloads what was loaded before it, the base dir's config included.
    Deno.writeTextFileSync(config, `${good}clear-plugins\n`);
    expect(
      await check(),
      "config",
      "FAIL",
      /important-plugin=.* comes before a clear-plugins line in .*\/regtest\/config, which unloads it/,
    );
    Deno.writeTextFileSync(config, `clear-plugins\n${good}`);
    expect(await check(), "config", "OK");
    // A Python plugin disabled, or cleared, is not loaded.
    Deno.writeTextFileSync(config, `plugin=/opt/backup.py\nclear-plugins\n${good}`);
    expect(await check(), "config", "OK");
    Deno.writeTextFileSync(config, `${good}plugin=/opt/backup.py\ndisable-plugin=backup.py\n`);
    expect(await check(), "config", "OK");
  }));

Deno.test("doctor: the config's include lines are followed, as lightningd does", () =>
  withNode(async (node) => {
    const config = `${node.dir}/config`;
    const good = Deno.readTextFileSync(config);
    const check = () => runChecks(node.dir, GOOD_SYSTEM);
    // Relative to the including file's directory.
    Deno.mkdirSync(`${node.dir}/conf.d`);
    Deno.writeTextFileSync(`${node.dir}/conf.d/plugins`, good);
    Deno.writeTextFileSync(config, "network=regtest\ninclude conf.d/plugins\n");
    expect(await check(), "config", "OK", /conf\.d\/plugins has important-plugin=/);
    Deno.writeTextFileSync(`${node.dir}/conf.d/plugins`, `${good}plugin=/opt/backup.py\n`);
    expect(
      await check(),
      "config",
      "FAIL",
      /conf\.d\/plugins still loads the Python backup plugin/,
    );
    Deno.writeTextFileSync(`${node.dir}/conf.d/plugins`, "disable-plugin=cln-backup-plugin\n");
    Deno.writeTextFileSync(config, `${good}include conf.d/plugins\n`);
    expect(await check(), "config", "FAIL", /disable-plugin=cln-backup-plugin/);
    // lightningd refuses to start on a missing include, or a loop.
    Deno.writeTextFileSync(config, `${good}include missing\n`);
    expect(await check(), "config", "FAIL", /cannot read the lightningd config: .*missing/);
    Deno.writeTextFileSync(config, `${good}include config\n`);
    expect(await check(), "config", "FAIL", /includes files in a loop/);
  }));

Deno.test("doctor: the commands it advises quote a lightning dir with a space in its path", () => {
  const base = Deno.makeTempDirSync();
  const dir = `${base}/node's dir`;
  try {
    Deno.mkdirSync(dir);
    const found = { dir, database: `${dir}/lightningd.sqlite3`, user: undefined };
    const quoted = `'${base}/node'\\''s dir`;
    const [, missing] = lockCheck(found);
    assert(missing.includes(`--lightning-dir ${quoted}'" (DIR must`), missing);
    Deno.writeFileSync(`${dir}/hsm_secret`, new Uint8Array(32), { mode: 0o644 });
    const [, open] = hsmSecretCheck(found);
    assert(open.includes(`"chmod 400 ${quoted}/hsm_secret'"`), open);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});
