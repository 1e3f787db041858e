import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { dumpDatabase } from "../../tests/support/dump.ts";
import { FakeLightningd } from "../../tests/support/fake_lightningd.ts";
import { loadFixture, PRE_4090_BACKUP } from "../../tests/support/fixtures.ts";
import { openBackend, openReader } from "../backends/open.ts";
import { restoreBackup } from "../backup/restore.ts";
import { encodeStatements } from "../format/record.ts";
import { encodeV1Header, encodeV1Record, V1_HEADER_SIZE, V1Type } from "../format/v1.ts";
import { upgrade } from "./upgrade.ts";
import {
  assertSetUp,
  BufferedOutput,
  makeBackup,
  makeNodeDir,
  otherDiskAt,
  recordedChanges,
  removeNodeDir,
} from "../../tests/support/cli_testing.ts";

interface V1Record {
  type: number;
  version: number;
  payload: Uint8Array;
}

/** Writes a v1 file as the Python plugin does; records past `acknowledged` are a torn tail. */
function writeV1(path: string, records: V1Record[], acknowledged: number): void {
  const encoded = records.map((r) => encodeV1Record(r.type, r.version, r.payload));
  const kept = encoded.slice(0, acknowledged);
  const lastOffset = V1_HEADER_SIZE + kept.slice(0, -1).reduce((n, r) => n + r.length, 0);
  const header = encodeV1Header({
    version: records[acknowledged - 1].version,
    nextOffset: lastOffset + kept.at(-1)!.length,
    prevVersion: records[acknowledged - 2].version,
    lastOffset,
    count: acknowledged,
  });
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  for (const bytes of [header, ...encoded]) file.writeSync(bytes);
  file.close();
}

/** The "restart" run's changes, versions 12 to 15. */
const RESTART = recordedChanges(["restart"]);

/** A v1 change record: the "restart" run's change at `version`, or `statements` there. */
function v1Change(version: number, statements = RESTART[version - 12].statements): V1Record {
  return { type: V1Type.Change, version, payload: encodeStatements(statements) };
}

/**
 * A v1 file's first records: the "fresh-start" database as the snapshot at 11, changes 12 and
 * 13, then a change 14 the node never committed, which the Python plugin stored before the
 * node stopped (its next start stores the real 14 after it).
 */
function v1UpToUncommitted(): V1Record[] {
  return [
    {
      type: V1Type.Snapshot,
      version: 11,
      payload: Deno.readFileSync(loadFixture("fresh-start").database),
    },
    v1Change(12),
    v1Change(13),
    v1Change(14, [
      "INSERT INTO vars (name, intval) VALUES ('never-committed', 1)",
      ...RESTART[2].statements,
    ]),
  ];
}

/** Restores `url` at `version` into a fresh file and dumps it. */
function dumpAt(url: string, version: number | undefined, dir: string): string {
  const path = `${dir}/dump-${crypto.randomUUID()}.sqlite3`;
  restoreBackup(openReader(url), path, { toVersion: version });
  const dump = dumpDatabase(path);
  Deno.removeSync(path);
  return dump;
}

async function run(args: string[]): Promise<{ code: number; output: BufferedOutput }> {
  const output = new BufferedOutput();
  return { code: await upgrade(args, output), output };
}

Deno.test("upgrade converts the pre-4090 v1 file keeping every version; the plugin continues", async () => {
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  const v1Url = `file://${base}/backup.dbak`;
  Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
  Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: v1Url, note: 1 }));
  // The node is where the Python plugin left it: at the v1 file's last version.
  restoreBackup(openReader(v1Url), dir);

  const { code, output } = await run(["--lightning-dir", dir]);
  assertEquals(code, 0, output.stderr.join("\n"));
  const url = `file://${base}/backup.clnb`;
  assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)), {
    backend_url: url,
    note: 1,
  });
  assertMatch(output.stdout[0], /^Converted ".*backup.dbak" \(versions 1 to 46, 46 records\)/);
  // The doctor it advises checks this node wherever it is run from, not the current directory.
  assert(
    output.stdout.some((line) => line.includes(`"cln-backup doctor --lightning-dir '${dir}'"`)),
    output.transcript,
  );
  assertEquals(output.stdout.at(-1), `important-plugin=${dir}/cln-backup-plugin`);
  assertEquals(Deno.readFileSync(`${base}/backup.dbak`), Deno.readFileSync(PRE_4090_BACKUP));
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name).sort(), [
    "backup.clnb",
    "backup.dbak",
    "regtest",
  ]);

  for (let version = 1; version <= 46; version++) {
    assertEquals(dumpAt(url, version, base), dumpAt(v1Url, version, base), `version ${version}`);
  }

  // lightningd starts with the plugin through the launcher, which now grants the new backup.
  const node = FakeLightningd.spawn({ lightningDir: dir, command: [`${dir}/cln-backup-plugin`] });
  for (let i = 0; i < 3; i++) {
    const outcome = await node.transaction([
      `INSERT INTO vars (name, intval) VALUES ('after-upgrade-${i}', ${i})`,
    ]);
    assertEquals(outcome, "committed", node.aborted);
  }
  assertEquals((await node.close()).code, 0, await node.stderr());
  const backend = openBackend(url);
  assertEquals(backend.state().version, 49);
  backend.close();
  assertEquals(dumpAt(url, undefined, base), dumpDatabase(`${dir}/lightningd.sqlite3`));
  removeNodeDir(dir);
});

Deno.test("upgrade warns when the converted backup is on the database's filesystem, and only then", async () => {
  const cases: [
    string,
    (base: string) => string[],
    (base: string, dir: string) => RegExp | undefined,
  ][] = [
    // Here the temporary directory really is on the database's filesystem.
    [
      "--to beside the database",
      (base) => ["--to", `file://${base}/converted`],
      (base, dir) =>
        new RegExp(
          `^Warning: the backup "${base}/converted" is on the same filesystem as the node's ` +
            `database "${dir}/lightningd.sqlite3": one disk failure loses both: put the backup ` +
            `on another disk, or add a copy on another disk or a remote one .*mirror <url>`,
        ),
    ],
    [
      "beside the v1 file, by default",
      () => [],
      (base) =>
        new RegExp(`^Warning: the backup "${base}/backup.clnb" is on the same filesystem as`),
    ],
    ["--to another disk", (base) => ["--to", `file://${base}/mnt/converted`], () => undefined],
  ];
  for (const [what, to, warning] of cases) {
    const dir = makeNodeDir();
    const base = Deno.realPathSync(`${dir}/..`);
    try {
      Deno.mkdirSync(`${base}/mnt`);
      const v1Url = `file://${base}/backup.dbak`;
      Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
      Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: v1Url }));
      restoreBackup(openReader(v1Url), dir);
      const output = new BufferedOutput();
      const code = await upgrade(
        ["--lightning-dir", dir, ...to(base)],
        output,
        undefined,
        otherDiskAt(`${base}/mnt`),
      );
      assertSetUp(code, output, dir, warning(base, dir), what);
    } finally {
      removeNodeDir(dir);
    }
  }
});

Deno.test("upgrade of a v1 file with a snapshot, a rewound change and a torn tail", async () => {
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  writeV1(`${base}/node.dbak`, [
    // The Python plugin's rewind left the uncommitted 14 in the file; the real 14 follows it.
    ...v1UpToUncommitted(),
    v1Change(14),
    v1Change(15),
    v1Change(16, ["INSERT INTO vars (name, intval) VALUES ('never-acknowledged', 1)"]),
  ], 6);
  const v1Url = `file://${base}/node.dbak`;
  Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: v1Url }));

  const url = `file://${base}/converted/node`;
  const { code, output } = await run(["--lightning-dir", dir, "--to", url]);
  assertEquals(code, 0, output.stderr.join("\n"));
  assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)).backend_url, url);

  for (let version = 11; version <= 15; version++) {
    assertEquals(dumpAt(url, version, base), dumpAt(v1Url, version, base), `version ${version}`);
  }
  assertEquals(dumpAt(url, 11, base), dumpDatabase(loadFixture("fresh-start").database));
  assertEquals(dumpAt(url, 15, base), dumpDatabase(loadFixture("restart").database));

  // The recorded activity run continues the upgraded backup through the plugin.
  const activity = loadFixture("activity");
  const node = FakeLightningd.spawn({
    lightningDir: dir,
    command: [`${dir}/cln-backup-plugin`],
    chunking: { kind: "sizes", sizes: activity.chunks },
  });
  assertEquals(await node.replay(activity.raw), "committed", node.aborted);
  assertEquals((await node.close()).code, 0, await node.stderr());
  assertEquals(dumpAt(url, undefined, base), dumpDatabase(activity.database));
  removeNodeDir(dir);
});

Deno.test("upgrade refuses what it cannot convert, changing nothing", async () => {
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);

  let result = await run(["--lightning-dir", dir]);
  assertEquals(result.code, 1);
  assertMatch(result.output.stderr[0], /^Cannot upgrade backup: no backup.lock in ".*regtest"/);

  const lock = JSON.stringify({ backend_url: `file://${base}/backup.dbak` });
  Deno.writeTextFileSync(`${dir}/backup.lock`, lock);
  Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
  Deno.mkdirSync(`${base}/backup.clnb`);
  result = await run(["--lightning-dir", dir]);
  assertEquals(result.code, 1);
  assertEquals(result.output.stderr, [
    `Cannot upgrade backup: "${base}/backup.clnb" already exists: choose another path with ` +
    `--to, or move it aside if it is not a backup you need`,
  ]);
  Deno.removeSync(`${base}/backup.clnb`);

  const listener = Deno.listen({ transport: "unix", path: `${dir}/lightning-rpc` });
  result = await run(["--lightning-dir", dir]);
  listener.close();
  assertEquals(result.code, 1);
  assertMatch(result.output.stderr[0], /^Cannot upgrade backup: lightningd is running on/);

  // A v1 file damaged in the middle: the half-made conversion is removed.
  const bytes = Deno.readFileSync(PRE_4090_BACKUP);
  bytes[V1_HEADER_SIZE + 8] = 9; // The first record's type.
  Deno.writeFileSync(`${base}/backup.dbak`, bytes);
  result = await run(["--lightning-dir", dir]);
  assertEquals(result.code, 1);
  assertMatch(
    result.output.stderr[0],
    /^Cannot read backup: unknown v1 record type 9 at offset 512/,
  );
  assertEquals(Deno.readTextFileSync(`${dir}/backup.lock`), lock);
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name).sort(), ["backup.dbak", "regtest"]);
  assert(![...Deno.readDirSync(dir)].some((e) => e.name === "cln-backup-plugin"));

  // Already converted: nothing to do.
  Deno.mkdirSync(`${base}/done`);
  Deno.writeTextFileSync(
    `${dir}/backup.lock`,
    JSON.stringify({ backend_url: `file://${base}/done` }),
  );
  result = await run(["--lightning-dir", dir]);
  assertEquals(result.code, 0);
  assertMatch(result.output.stdout[0], /already names a cln-backup backup .*: nothing to upgrade$/);
  removeNodeDir(dir);
});

Deno.test("upgrade of a Python plugin node backing up to a server writes the launcher it lacks", async () => {
  // The Python plugin's remote set-up: backup.lock names a socket: URL (the Python init wrote
  // it, with its spaces), and there is no launcher. Nothing is converted on the node, but
  // lightningd needs the launcher to load cln-backup: upgrade said "nothing to upgrade" and
  // left none, so the config line the README gives named a file that did not exist.
  const dir = makeNodeDir("fresh-start");
  try {
    const url = "socket:127.0.0.1:8700?proxy=socks5:127.0.0.1:9050";
    Deno.writeTextFileSync(`${dir}/backup.lock`, `{"backend_url": "${url}"}`);
    const { code, output } = await run(["--lightning-dir", dir]);
    assertEquals(code, 0, output.transcript);
    const launcher = Deno.readTextFileSync(`${dir}/cln-backup-plugin`);
    assert(launcher.includes("--allow-net=127.0.0.1:9050"), launcher);
    assertEquals(JSON.parse(Deno.readTextFileSync(`${dir}/backup.lock`)).backend_url, url);
    assertEquals(output.stdout.at(-1), `important-plugin=${dir}/cln-backup-plugin`);

    // Run again, with the launcher there: nothing to do. The server may be the Python one
    // still: what is known is the node's set-up, not what its URL's server holds.
    const again = await run(["--lightning-dir", dir]);
    assertEquals(again.code, 0, again.output.transcript);
    assertEquals(again.output.stdout, [
      `"${dir}/backup.lock" names the backup server ${url}, and the node is set up for ` +
      `cln-backup already (its launcher is there): nothing to upgrade on the node (a Python ` +
      `server's storage is converted on its machine, with "cln-backup upgrade <its url>")`,
    ]);
    // A node of a wire v2 server (it has a credential) is told what --encrypt does instead.
    Deno.writeTextFileSync(`${dir}/backup.credential`, "", { mode: 0o600 });
    const v2 = await run(["--lightning-dir", dir]);
    assertEquals(v2.code, 0, v2.output.transcript);
    assertMatch(
      v2.output.stdout.join("\n"),
      /set up for cln-backup already .*: nothing to upgrade on the node \("--encrypt" encrypts it on its server\)$/,
    );
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("upgrade of a backup.lock URL the Python plugin read but cln-backup does not says to fix backup.lock", async () => {
  // The Python plugin took urlparse(url).path, relative to lightningd's directory:
  // "file:/abs" and "file:name" worked for it, and upgrade is the command its users run.
  const dir = makeNodeDir("fresh-start");
  const base = Deno.realPathSync(`${dir}/..`);
  try {
    Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
    for (
      const [url, fixed] of [
        [`file:${base}/backup.dbak`, `file://${base}/backup.dbak`],
        ["file:../backup.dbak", `file://${base}/backup.dbak`],
      ]
    ) {
      const lock = JSON.stringify({ backend_url: url });
      Deno.writeTextFileSync(`${dir}/backup.lock`, lock);
      const { code, output } = await run(["--lightning-dir", dir]);
      assertEquals(code, 1, output.transcript);
      assertEquals(output.stderr.length, 1, output.transcript);
      assertMatch(
        output.stderr[0],
        new RegExp(
          `^Cannot upgrade backup: "${dir}/backup.lock" names "${url}", which the Python ` +
            `plugin read as .* but cln-backup does not take .*: write "${fixed}" there, then ` +
            `run upgrade again$`,
        ),
      );
      assertEquals(Deno.readTextFileSync(`${dir}/backup.lock`), lock);
    }
  } finally {
    removeNodeDir(dir);
  }
});

Deno.test("upgrade does not finish a conversion left beside a v1 file the Python plugin rewound since", async () => {
  // An upgrade killed before backup.lock, then lightningd on the Python plugin: it rewound
  // the change the node never committed and stored the one it did at the same version. The
  // conversion has the v1 file's versions and snapshots, but the rewound change.
  const dir = makeNodeDir("restart");
  const base = Deno.realPathSync(`${dir}/..`);
  const records = v1UpToUncommitted();
  const v1Url = `file://${base}/node.dbak`;
  writeV1(`${base}/node.dbak`, records, 4);
  let result = await run([v1Url]); // The conversion a killed upgrade leaves.
  assertEquals(result.code, 0, result.output.transcript);
  writeV1(`${base}/node.dbak`, [...records, v1Change(14)], 5);
  const lock = JSON.stringify({ backend_url: v1Url });
  Deno.writeTextFileSync(`${dir}/backup.lock`, lock);

  result = await run(["--lightning-dir", dir]);
  assertEquals(result.output.stderr, [
    `Cannot upgrade backup: "${base}/node.clnb" already exists: choose another path with ` +
    `--to, or move it aside if it is not a backup you need`,
  ]);
  assertEquals(Deno.readTextFileSync(`${dir}/backup.lock`), lock);
  removeNodeDir(dir);
});

Deno.test("upgrade to a plain backup refuses a key file in the lightning dir (the plugin would not start)", async () => {
  // A killed "upgrade --encrypt"'s, whose copy the operator moved aside as told: the plain
  // conversion was set up beside it, and lightningd then stopped at start.
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  Deno.copyFileSync(PRE_4090_BACKUP, `${base}/backup.dbak`);
  const lock = JSON.stringify({ backend_url: `file://${base}/backup.dbak` });
  Deno.writeTextFileSync(`${dir}/backup.lock`, lock);
  const stale = JSON.stringify({ cln_backup_data_key: "11".repeat(32) }) + "\n";
  Deno.writeTextFileSync(`${dir}/backup.key`, stale, { mode: 0o600 });

  // A plain copy to S3 too: before its upload, not once backup.lock names it.
  for (const to of [[], ["--to", "s3://bucket/node"]]) {
    const { code, output } = await run(["--lightning-dir", dir, ...to]);
    assertEquals(code, 1, output.transcript);
    assertEquals(output.stderr, [
      `Cannot upgrade backup: "${dir}/backup.key" holds a key, but this upgrade makes a plain ` +
      `backup: the plugin would refuse to start with it; upgrade with --encrypt, or move the ` +
      `key file aside (it may be an interrupted "upgrade --encrypt"'s), then run this again`,
    ]);
    assertEquals(Deno.readTextFileSync(`${dir}/backup.lock`), lock);
  }
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name).sort(), ["backup.dbak", "regtest"]);
  removeNodeDir(dir);
});

Deno.test("upgrade of a plain cln-backup backup beside a key file says the set-up is not done, not that nothing is to do", async () => {
  // An "upgrade --encrypt" killed once its copy was in place, backup.lock not yet rewritten:
  // its key file beside the plain backup stops the plugin, and lightningd with it.
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  const url = `file://${base}/plain`;
  await makeBackup(`${base}/plain`, RESTART);
  const lock = JSON.stringify({ backend_url: url });
  Deno.writeTextFileSync(`${dir}/backup.lock`, lock);
  const stale = JSON.stringify({ cln_backup_data_key: "11".repeat(32) }) + "\n";
  Deno.writeTextFileSync(`${dir}/backup.key`, stale, { mode: 0o600 });
  const { code, output } = await run(["--lightning-dir", dir]);
  assertEquals(code, 1, output.transcript);
  assertEquals(output.stderr.length, 1, output.transcript);
  assertMatch(
    output.stderr[0],
    /^Cannot upgrade backup: ".*\/backup\.key" holds a key, but backup\.lock names the plain backup file:.*\/plain, .*: run ".*upgrade --encrypt" again .*or move the key file aside/,
  );
  assertEquals(Deno.readTextFileSync(`${dir}/backup.lock`), lock);
  assertEquals(Deno.readTextFileSync(`${dir}/backup.key`), stale);
  removeNodeDir(dir);
});
