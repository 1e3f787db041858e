/**
 * Wire v1 against the real Python `backup-cli` (lightningd/plugins, `backup/`), both ways: our
 * plugin and CLI with its `server`, and its `init` and `restore` with our server. Opt-in, as
 * the Python code is not ours to ship: set `CLN_BACKUP_PYTHON_BACKUP_CLI` to the path of its
 * `backup/backup-cli` (it needs Python 3 with `click` and `PySocks`: Debian's python3-click and
 * python3-socks), and `CLN_BACKUP_PYTHON` to the interpreter if not `python3`. The recorded
 * byte streams of tests/wire_v1_test.ts check the same protocol without it.
 */
import { replayRecordedRuns } from "./support/plugin_session.ts";
import { assertEquals, assertMatch } from "./support/assert.ts";
import { FakeLightningd } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { startServer } from "./support/wire_server.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { init } from "../lib/cli/init.ts";
import { restore } from "../lib/cli/restore.ts";
import { verify } from "../lib/cli/verify.ts";
import { compact } from "../lib/cli/compact.ts";
import { bumpStatement } from "./support/statements.ts";

const BACKUP_CLI = Deno.env.get("CLN_BACKUP_PYTHON_BACKUP_CLI");
const PYTHON = Deno.env.get("CLN_BACKUP_PYTHON") || "python3";

if (!BACKUP_CLI) {
  console.log(
    "CLN_BACKUP_PYTHON_BACKUP_CLI is not set: skipping the tests against the Python backup-cli " +
      "(set it to lightningd/plugins' backup/backup-cli to run them)",
  );
}

/** Runs the Python backup-cli; its output, both streams, for the assertion's message. */
async function python(...args: string[]): Promise<{ code: number; output: string }> {
  const run = await new Deno.Command(PYTHON, { args: [BACKUP_CLI!, ...args] }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: run.code, output: decode(run.stdout) + decode(run.stderr) };
}

/** The Python `backup-cli server` on the `.dbak` at `path`, on a free loopback port. */
class PythonServer {
  #child: Deno.ChildProcess | undefined;
  readonly port: number;
  log = "";

  constructor(readonly path: string) {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = probe.addr.port;
    probe.close();
  }

  get url(): string {
    return `socket:127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.#child = new Deno.Command(PYTHON, {
      args: [BACKUP_CLI!, "server", `file://${this.path}`, `127.0.0.1:${this.port}`],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    for (const stream of [this.#child.stdout, this.#child.stderr]) {
      (async () => {
        for await (const text of stream.pipeThrough(new TextDecoderStream())) this.log += text;
      })();
    }
    for (let tries = 0; tries < 100; tries++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    throw new Error(`the Python server did not listen: ${this.log}`);
  }

  async kill(): Promise<void> {
    if (!this.#child) return;
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // It had ended.
    }
    await this.#child.status;
    this.#child = undefined;
  }
}

/** Restores `url` with our CLI and with the Python one; both must equal `node`. */
async function assertBothRestore(url: string, node: string, root: string): Promise<void> {
  const ours = `${root}/ours-${crypto.randomUUID()}.sqlite3`;
  const output = new BufferedOutput();
  assertEquals(await restore([url, ours], output), 0, output.transcript);
  assertEquals(dumpDatabase(ours), node, `our restore of ${url}`);
  const theirs = `${root}/theirs-${crypto.randomUUID()}.sqlite3`;
  const run = await python("restore", url, theirs);
  assertEquals(run.code, 0, run.output);
  assertEquals(dumpDatabase(theirs), node, `the Python restore of ${url}`);
}

Deno.test({
  name: "our plugin backs up through the Python server, which it outlives; both tools restore",
  ignore: !BACKUP_CLI,
  async fn() {
    const root = Deno.makeTempDirSync({ prefix: "python-interop-" });
    const dbak = `${root}/backup.dbak`;
    const made = await python("init", `file://${dbak}`);
    assertEquals(made.code, 0, made.output);
    let server = new PythonServer(dbak);
    await server.start();
    try {
      const dir = `${root}/node`;
      Deno.mkdirSync(dir);
      writeLockFile(dir, { backend_url: server.url });
      await replayRecordedRuns(dir);
      // The server killed and started again while the node writes: the change in flight is
      // sent again where the server lacks it (the Python plugin's rule), and the node goes on.
      const lightningd = FakeLightningd.spawn({ lightningDir: dir });
      try {
        await lightningd.getmanifest();
        assertEquals(
          await lightningd.transaction([`DELETE FROM vars WHERE name = 'a'`]),
          "committed",
        );
        const port = server.port;
        await server.kill();
        const pending = lightningd.transaction([`DELETE FROM vars WHERE name = 'b'`]);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        server = Object.assign(new PythonServer(dbak), { port });
        await server.start();
        assertEquals(await pending, "committed");
        assertEquals(
          await lightningd.transaction([`DELETE FROM vars WHERE name = 'c'`]),
          "committed",
        );
        assertEquals((await lightningd.stop()).code, 0);
      } finally {
        await lightningd.kill().catch(() => {});
      }
      const node = dumpDatabase(`${dir}/lightningd.sqlite3`);
      await assertBothRestore(server.url, node, root);
      const verified = new BufferedOutput();
      assertEquals(await verify([server.url], verified), 0, verified.transcript);
      // With the node stopped, our compact has the Python server compact (COMPACT).
      const compacted = new BufferedOutput();
      assertEquals(await compact([server.url], compacted), 0, compacted.transcript);
      assertMatch(compacted.stdout[0], /^Compacted in [\d.]+ s: \d+ change\(s\) folded; /);
      await assertBothRestore(server.url, node, root);
      // The node goes on writing on top of the Python server's compacted backup.
      const again = FakeLightningd.spawn({ lightningDir: dir });
      try {
        await again.getmanifest();
        assertEquals(await again.transaction([`DELETE FROM vars WHERE name = 'd'`]), "committed");
        assertEquals((await again.stop()).code, 0);
      } finally {
        await again.kill().catch(() => {});
      }
      // lightningd dies after the plugin's answer, before its commit: at the next start the
      // plugin has the Python server drop that change (REWIND), then goes on.
      const dying = FakeLightningd.spawn({ lightningDir: dir });
      try {
        await dying.getmanifest();
        await dying.init();
        const from = dying.dataVersion();
        const writes = [`DELETE FROM vars WHERE name = 'never'`, bumpStatement(from)];
        dying.db.exec("BEGIN");
        for (const statement of writes) dying.db.exec(statement);
        const answer = await dying.request("db_write", { data_version: from + 1, writes });
        assertEquals(answer.result, { result: "continue" });
        dying.db.exec("ROLLBACK");
        assertEquals((await dying.close()).code, 0);
      } finally {
        await dying.kill().catch(() => {});
      }
      const rewound = FakeLightningd.spawn({ lightningDir: dir });
      try {
        await rewound.getmanifest();
        assertEquals(await rewound.transaction([`DELETE FROM vars WHERE name = 'e'`]), "committed");
        assertMatch(
          rewound.logs.map((l) => l.message).join("\n"),
          /dropping change \d+ from the backup: the node stopped before committing/,
        );
        assertEquals((await rewound.stop()).code, 0);
      } finally {
        await rewound.kill().catch(() => {});
      }
      const later = dumpDatabase(`${dir}/lightningd.sqlite3`);
      await assertBothRestore(server.url, later, root);
      await server.kill();
      // The .dbak it wrote, read from the file by both tools.
      await assertBothRestore(`file://${dbak}`, later, root);
    } finally {
      await server.kill();
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "the Python backup-cli's init and restore through our server",
  ignore: !BACKUP_CLI,
  async fn() {
    const root = Deno.makeTempDirSync({ prefix: "python-interop-" });
    const made = new BufferedOutput();
    assertEquals(await init([`file://${root}/served`], made), 0, made.transcript);
    const { server, url } = startServer(`${root}/served`);
    const dir = makeNodeDir("restart");
    try {
      const run = await python("init", "--lightning-dir", dir, url);
      assertEquals(run.code, 0, run.output);
      const lightningd = FakeLightningd.spawn({ lightningDir: dir });
      try {
        await lightningd.getmanifest();
        for (const name of ["a", "b", "c"]) {
          assertEquals(
            await lightningd.transaction([`DELETE FROM vars WHERE name = '${name}'`]),
            "committed",
          );
        }
        assertEquals((await lightningd.stop()).code, 0);
      } finally {
        await lightningd.kill().catch(() => {});
      }
      await assertBothRestore(url, dumpDatabase(`${dir}/lightningd.sqlite3`), root);
    } finally {
      await server.close();
      removeNodeDir(dir);
      Deno.removeSync(root, { recursive: true });
    }
  },
});
