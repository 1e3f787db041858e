import { assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { loadFixture, PRE_4090_BACKUP } from "../../tests/support/fixtures.ts";
import { status } from "./status.ts";
import { BufferedOutput, makeBackup, recordedChanges } from "../../tests/support/cli_testing.ts";
import { makeEncryptedBackup } from "../../tests/support/encrypted.ts";

async function run(args: string[]): Promise<BufferedOutput> {
  const output = new BufferedOutput();
  assertEquals(await status(args, output), 0, output.stderr.join("\n"));
  assertEquals(output.stderr, []);
  return output;
}

Deno.test("status describes a backup, in text and JSON, and shows a torn tail", async () => {
  const dir = Deno.makeTempDirSync();
  const url = await makeBackup(
    `${dir}/backup`,
    recordedChanges(["restart"]),
    { version: 11, path: loadFixture("fresh-start").database },
  );
  const text = (await run([url])).stdout;
  assertEquals(text.slice(0, 5), [
    `backup:     ${url}`,
    "format:     cln-backup 3",
    "versions:   11 to 15",
    "records:    6 (changes, and snapshot parts)",
    "snapshots:  at version 11",
  ]);
  assertMatch(text[5], /^bytes: {6}\d+$/);
  assertEquals(text[6], "torn tail:  none");

  const json = JSON.parse((await run([url, "--json"])).text);
  assertEquals({ ...json, bytes: 0 }, {
    url,
    format: "cln-backup 3",
    snapshots: [11],
    firstVersion: 11,
    lastVersion: 15,
    records: 6,
    bytes: 0,
    tornBytes: 0,
    tail: null,
  });
  assertEquals(`bytes:      ${json.bytes}`, text[5]);

  // A crash mid-append leaves a partial record at the live log's tail.
  const log = [...Deno.readDirSync(`${dir}/backup`)].find((e) => e.name.startsWith("log-"))!;
  const logPath = `${dir}/backup/${log.name}`;
  const end = Deno.statSync(logPath).size;
  Deno.writeFileSync(logPath, new Uint8Array(10).fill(7), { append: true });
  assertEquals(
    (await run([url])).stdout.at(-1),
    `torn tail:  10 bytes at offset ${end} of "${logPath}" fail their checks: a record torn ` +
      `by a crash if the node is at version 15 (the plugin cuts it), a damaged change if it ` +
      `is at 16 or later`,
  );
  const described = JSON.parse((await run([url, "--json"])).text);
  assertEquals([described.tornBytes, described.tail], [10, {
    path: logPath,
    offset: end,
    bytes: 10,
  }]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("status describes the Python plugin's v1 file", async () => {
  const url = `file://${PRE_4090_BACKUP}`;
  assertEquals((await run([url])).stdout, [
    `backup:     ${url}`,
    "format:     v1 (Python backup plugin)",
    "versions:   1 to 46",
    "records:    46 (changes, and snapshot parts)",
    "snapshots:  none",
    "bytes:      79811",
    "torn tail:  none",
  ]);
  assertEquals(JSON.parse((await run([url, "--json"])).text), {
    url,
    format: "v1 (Python backup plugin)",
    snapshots: [],
    firstVersion: 1,
    lastVersion: 46,
    records: 46,
    bytes: 79811,
    tornBytes: 0,
    tail: null,
  });
});

Deno.test("status of an empty backup, and of damage in the middle of a backup", async () => {
  const dir = Deno.makeTempDirSync();
  const url = await makeBackup(`${dir}/backup`, []);
  assertEquals((await run([url])).stdout[2], "versions:   none yet (version 0)");

  const damaged = await makeBackup(`${dir}/damaged`, recordedChanges(["restart"]));
  const log = [...Deno.readDirSync(`${dir}/damaged`)].find((e) => e.name.startsWith("log-"))!;
  const path = `${dir}/damaged/${log.name}`;
  const bytes = Deno.readFileSync(path);
  bytes[64 + 40] ^= 0xff; // In the first record's payload: not a torn tail.
  Deno.writeFileSync(path, bytes);
  const output = new BufferedOutput();
  assertEquals(await status([damaged], output), 1);
  assertEquals(output.stderr.length, 1);
  assertMatch(
    output.stderr[0],
    /^Cannot read backup: record payload checksum mismatch at offset 64 of ".*"; the backup is damaged: restore from another copy/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("status of a directory with no segment: not called damaged, and a server root named", async () => {
  const dir = Deno.makeTempDirSync();
  Deno.mkdirSync(`${dir}/empty`);
  Deno.mkdirSync(`${dir}/root/nodes/n1`, { recursive: true });
  for (
    const [path, why] of [
      [
        `${dir}/empty`,
        /^Cannot open backup: ".*\/empty" holds no backup segment \(no base-\*\.clnb or log-\*\.clnb file\): check the URL; /,
      ],
      [
        `${dir}/root`,
        /^Cannot open backup: ".*\/root" is a backup server's root, not a backup: name a node's backup, file:\/\/.*\/root\/nodes\/NAME\/backup/,
      ],
    ] as const
  ) {
    const output = new BufferedOutput();
    assertEquals(await status([`file://${path}`], output), 1);
    assertEquals(output.stderr.length, 1);
    assertMatch(output.stderr[0], why);
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("status of an encrypted backup whose key.json is a FIFO, or huge, ends; the wraps are not named", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const backup = `${dir}/backup`;
    await makeEncryptedBackup(backup);
    const path = `${backup}/key.json`;
    for (const damage of ["fifo", "sparse"]) {
      Deno.removeSync(path);
      if (damage === "fifo") new Deno.Command("mkfifo", { args: [path] }).outputSync();
      else Deno.openSync(path, { write: true, create: true }).truncateSync(2 ** 33);
      // In a child: a read of a FIFO blocks the thread, which no timer in this one could end.
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../../cli.ts", import.meta.url).pathname,
          "status",
          `file://${backup}`,
          "--json",
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).spawn();
      const { code, stdout } = await child.output();
      assertEquals(code, 0, `${damage}: status did not end (killed) or failed`);
      assertEquals(JSON.parse(new TextDecoder().decode(stdout)).wrappedFor, [], damage);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
