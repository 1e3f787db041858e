/**
 * `status` and `verify` of a `socket+tls:` backup with a credential ask the v2 server
 * (STATUS, VERIFY) instead of fetching the backup: backup-cli, with the command's permissions
 * only, against a real server, says what `status` and `verify` of the same backup directory
 * say on the server's machine; and a record damaged on the server makes `verify` fail in one
 * line.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { backUpWithPlugin, withServer } from "./support/v2_server.ts";
import { BufferedOutput, removeNodeDir } from "./support/cli_testing.ts";
import { status } from "../lib/cli/status.ts";
import { verify } from "../lib/cli/verify.ts";
import { CREDENTIAL_ENV, CREDENTIAL_NAME } from "../lib/backends/socket/credential.ts";
import { readLayout } from "../lib/format/layout.ts";
import { runBackupCli } from "./support/backup_cli.ts";
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import { ServerStorage } from "../lib/server/storage.ts";
import { WireConnection } from "../lib/backends/socket/connection.ts";
import { socketUrl } from "../lib/backends/socket/backend.ts";
import { encodeFrame, V2Type } from "../lib/wire/packets_v2.ts";

/** backup-cli `args` with the node's credential. */
function cli(args: string[], credential: string) {
  return runBackupCli(args, { [CREDENTIAL_ENV]: credential });
}

/** What the CLI prints for `args` on this machine (no credential in play). */
async function local(
  command: typeof status,
  args: string[],
): Promise<{ code: number; out: string[]; err: string[] }> {
  const output = new BufferedOutput();
  const code = await command(args, output);
  return { code, out: output.stdout, err: output.stderr };
}

Deno.test("status and verify over v2 say what they say of the same backup on the server, and fetch nothing", async () => {
  await withServer(
    async ({ root, url, nodes, logs }) => {
      const node = await backUpWithPlugin(root, url, nodes, "carol");
      const credential = `${node}/${CREDENTIAL_NAME}`;
      const dir = nodes.backupDir("carol");
      const here = `file://${dir}`;
      const sent = logs.filter((l) => /RESTORE sent/.test(l)).length;
      try {
        // status, text: every line but the URL's.
        const remote = await cli(["status", url], credential);
        assertEquals(remote.code, 0, remote.err.join("\n"));
        const mine = await local(status, [here]);
        assertEquals(remote.out[0], `backup:     ${url}`);
        assertEquals(remote.out.slice(1), mine.out.slice(1));
        assertMatch(mine.out.join("\n"), /snapshots: {2}at version \d+/);
        // status --json: every field but the URL.
        const json = await cli(["status", url, "--json"], credential);
        assertEquals(json.code, 0, json.err.join("\n"));
        const [a, b] = [
          JSON.parse(json.out[0]),
          JSON.parse((await local(status, [here, "--json"])).out[0]),
        ];
        assertEquals(a.url, url);
        assertEquals({ ...a, url: here }, b);
        // verify: the same line, naming the URL it was given.
        const checked = await cli(["verify", url], credential);
        assertEquals(checked.code, 0, checked.err.join("\n"));
        const ours = await local(verify, [here]);
        assertEquals(ours.code, 0);
        assertMatch(
          ours.out[0],
          /^OK: .* restores to version \d+ passing SQLite's integrity check$/,
        );
        assertEquals(checked.out, ours.out.map((l) => l.replace(`"${here}"`, `"${url}"`)));
        // Nothing was fetched (a fetch is a RESTORE), and VERIFY left no scratch behind.
        assertEquals(logs.filter((l) => /RESTORE sent/.test(l)).length, sent);
        assert(!Deno.readDirSync(`${dir}/..`).some((e) => e.name.startsWith(".verify-")));

        // A record damaged on the server: its snapshot, in the middle.
        const base = readLayout(dir).bases[0].path;
        const bytes = Deno.readFileSync(base);
        bytes[bytes.length >> 1] ^= 0xff;
        Deno.writeFileSync(base, bytes);
        const failed = await cli(["verify", url], credential);
        assertEquals(failed.code, 1);
        assertEquals(failed.out, []);
        assertEquals(failed.err.length, 1, failed.err.join("\n"));
        const why = (await local(verify, [here])).err[0].replace(/^FAIL: /, "");
        assertMatch(
          failed.err[0],
          /^FAIL: Cannot verify backup: the server refused VERIFY: VERIFY failed: /,
        );
        assert(failed.err[0].endsWith(why), `${failed.err[0]}\nshould end with\n${why}`);
        assert(!Deno.readDirSync(`${dir}/..`).some((e) => e.name.startsWith(".verify-")));
      } finally {
        removeNodeDir(node);
      }
    },
    {},
    { tls: true },
  );
});

Deno.test("a VERIFY whose client leaves is stopped, and lets go of the node's connection at once", async () => {
  await withServer(async ({ root, url, nodes, logs, credential }) => {
    // A base of 24 MB that does not compress: a VERIFY that takes a while to restore it.
    const database = `${root}/node.sqlite3`;
    const db = new DatabaseSync(database);
    db.exec("CREATE TABLE pad (b BLOB)");
    const insert = db.prepare("INSERT INTO pad VALUES (?)");
    for (let i = 0; i < 6000; i++) insert.run(crypto.getRandomValues(new Uint8Array(4000)));
    db.close();
    const dir = nodes.backupDir("alice");
    const storage = ServerStorage.open(`file://${dir}`, dir, () => {});
    await storage.storeSnapshotFile(1, database);
    storage.close();
    const conn = await WireConnection.open(socketUrl(url), 30_000, credential("alice"));
    await conn.send(encodeFrame(V2Type.Verify));
    conn.close();
    const left = /\(node alice\): disconnected/;
    while (!logs.some((line) => left.test(line))) await new Promise((r) => setTimeout(r, 10));
    assert(
      logs.some((line) => /closed by the client during its VERIFY/.test(line)),
      logs.join("\n"),
    );
    // Its worker stopped, the database it restored meanwhile is gone.
    const beside = [...Deno.readDirSync(dirname(dir))].map((entry) => entry.name);
    assertEquals(beside.filter((name) => name.startsWith(".verify-")), []);
  });
});
