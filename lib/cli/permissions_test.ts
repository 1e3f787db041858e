import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { commandGrants, denoFlags, PLANNED_COMMANDS } from "./permissions.ts";
import { COMMANDS } from "./main.ts";
import { WORKER_CODE } from "./launcher.ts";
import { PRIMITIVES_MODULE } from "../crypto/data_key.ts";
import { SIGV4_MODULE } from "../backends/s3/client.ts";
import { RUNTIME_FLAGS } from "./runtime_flags.ts";

const CRYPTO = PRIMITIVES_MODULE.pathname;
const SECRET_ENV = "CLN_BACKUP_PASSPHRASE,CLN_BACKUP_IDENTITY,CLN_BACKUP_NEW_PASSPHRASE";
import { makeNodeDir, removeNodeDir } from "../../tests/support/cli_testing.ts";
import { createFileBackup } from "../backends/file/create.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { writeLockFile } from "../backup/lock_file.ts";
import { parentChildDatabase } from "../../tests/support/migration.ts";
import { bumpStatement as bump } from "../../tests/support/statements.ts";

const BASE = [...RUNTIME_FLAGS, "--no-prompt", "--no-config", "--no-lock"];

function flags(...args: string[]): string[] {
  return denoFlags(commandGrants(args, "/tmp"));
}

Deno.test("every command has a row in the permission table", () => {
  for (const name of Object.keys(COMMANDS)) {
    assert(PLANNED_COMMANDS.includes(name), name);
  }
});

Deno.test("each command may touch only what its arguments name", () => {
  assertEquals(flags("status", "file:///b/node", "--json"), [
    ...BASE,
    "--allow-read=/b/node",
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI",
  ]);
  assertEquals(flags("verify", "--", "file:///b/node"), [
    ...BASE,
    `--allow-read=/b/node,${CRYPTO},${WORKER_CODE},/tmp`,
    "--allow-write=/tmp",
    `--allow-env=INIT_CWD,CLN_BACKUP_CLI,${SECRET_ENV},TMPDIR`,
  ]);
  assertEquals(flags("restore", "file:///b/node.dbak", "/n/regtest"), [
    ...BASE,
    `--allow-read=/b/node.dbak,/b/node.clnb,${CRYPTO},${WORKER_CODE},/n/regtest,/n`,
    "--allow-write=/n/regtest,/n",
    `--allow-env=INIT_CWD,CLN_BACKUP_CLI,${SECRET_ENV}`,
  ]);
  // An encrypted backup's secret files, named on the command line, may be read.
  assertEquals(
    flags("restore", "file:///b/n", "/n/r", "--passphrase-file", "/k/p", "--identity", "/k/i"),
    [
      ...BASE,
      `--allow-read=/b/n,/b/n.clnb,${CRYPTO},/k/p,/k/i,${WORKER_CODE},/n/r,/n`,
      "--allow-write=/n/r,/n",
      `--allow-env=INIT_CWD,CLN_BACKUP_CLI,${SECRET_ENV}`,
    ],
  );
  assertEquals(flags("init", "--encrypt", "/n/regtest", "file:///srv/b"), [
    ...BASE,
    `--allow-read=/srv,/n/regtest,/n,${CRYPTO}`,
    "--allow-write=/srv,/n/regtest",
    "--allow-net=unix:/n/regtest/lightning-rpc",
    `--allow-env=INIT_CWD,CLN_BACKUP_CLI,${SECRET_ENV}`,
  ]);
  assertEquals(flags("rekey", "file:///srv/b", "--key-file", "/n/regtest"), [
    ...BASE,
    `--allow-read=/srv/b,${CRYPTO},/n/regtest`,
    "--allow-write=/srv/b,/n/regtest",
    `--allow-env=INIT_CWD,CLN_BACKUP_CLI,${SECRET_ENV}`,
  ]);
  assertEquals(flags("init", "file:///srv/b"), [
    ...BASE,
    "--allow-read=/srv",
    "--allow-write=/srv",
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI",
  ]);
  assertEquals(flags("init", "/n/regtest", "file:///srv/b"), [
    ...BASE,
    "--allow-read=/srv,/n/regtest,/n",
    "--allow-write=/srv,/n/regtest",
    "--allow-net=unix:/n/regtest/lightning-rpc",
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI",
  ]);
  // Each copy init makes is built beside its path too; an S3 one needs its endpoint.
  assertEquals(
    flags("init", "/n/r", "file:///srv/b", "--mirror", "file:///m/b", "--async", "s3://bkt/n"),
    [
      ...BASE,
      `--allow-read=/srv,/m,/tmp,${SIGV4_MODULE.pathname},/n/r,/n`,
      "--allow-write=/srv,/m,/tmp,/n/r",
      "--allow-net=bkt.s3.us-east-1.amazonaws.com:443,unix:/n/r/lightning-rpc",
      "--allow-env=INIT_CWD,CLN_BACKUP_CLI,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_SESSION_TOKEN,TMPDIR",
    ],
  );
  assertEquals(flags("server", "file:///srv/b", "[::1]:8700", "--log-mode", "systemd"), [
    ...BASE,
    `--allow-read=/srv,${WORKER_CODE}`,
    "--allow-write=/srv",
    "--allow-net=[::1]:8700",
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI",
  ]);
  // A socket backup: its server (or its proxy), the node credential's variable, and the
  // temporary directory it is fetched into (wire v1).
  assertEquals(flags("status", "socket:backup.example:8700?proxy=socks5:127.0.0.1:9050"), [
    ...BASE,
    "--allow-read=/tmp",
    "--allow-write=/tmp",
    "--allow-net=127.0.0.1:9050",
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI,CLN_BACKUP_CREDENTIAL,TMPDIR",
  ]);
  // Over TLS trusting a CA: and read on that CA file.
  assertEquals(flags("verify", "socket+tls:backup.example:8700?ca=/etc/ca.pem"), [
    ...BASE,
    `--allow-read=/etc/ca.pem,/tmp,${CRYPTO},${WORKER_CODE}`,
    "--allow-write=/tmp",
    "--allow-net=backup.example:8700",
    `--allow-env=INIT_CWD,CLN_BACKUP_CLI,CLN_BACKUP_CREDENTIAL,TMPDIR,${SECRET_ENV}`,
  ]);
  // An s3 backup: its endpoint, the key variables, the temporary directory it is fetched into,
  // the request signer.
  assertEquals(flags("status", "s3://bucket/n?endpoint=http://127.0.0.1:7480&path-style=1"), [
    ...BASE,
    `--allow-read=/tmp,${SIGV4_MODULE.pathname}`,
    "--allow-write=/tmp",
    "--allow-net=127.0.0.1:7480",
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_SESSION_TOKEN,TMPDIR",
  ]);
  // With the CA file its ca= names.
  assertEquals(flags("status", "s3://bucket/n?endpoint=https://minio.home&ca=/etc/home-ca.pem"), [
    ...BASE,
    `--allow-read=/etc/home-ca.pem,/tmp,${SIGV4_MODULE.pathname}`,
    "--allow-write=/tmp",
    "--allow-net=bucket.minio.home:443",
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_SESSION_TOKEN,TMPDIR",
  ]);
  // Restore from several copies: each of them.
  assertEquals(flags("restore", "file:///b/one", "/n/regtest", "--also", "file:///c/two"), [
    ...BASE,
    `--allow-read=/b/one,/c/two,${CRYPTO},${WORKER_CODE},/n/regtest,/n`,
    "--allow-write=/n/regtest,/n",
    `--allow-env=INIT_CWD,CLN_BACKUP_CLI,${SECRET_ENV}`,
  ]);
  // As root, compact stats every directory above the backup: Deno's read is on all below.
  assertEquals(flags("compact", "file:///srv/b"), [
    ...BASE,
    Deno.uid() === 0 ? "--allow-read" : `--allow-read=/srv/b,${CRYPTO},${WORKER_CODE}`,
    "--allow-write=/srv/b",
    `--allow-env=INIT_CWD,CLN_BACKUP_CLI,${SECRET_ENV}`,
    "--allow-sys=uid",
  ]);
});

Deno.test("upgrade may read the v1 file backup.lock names and write beside it", () => {
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  Deno.writeTextFileSync(`${dir}/backup.lock`, `{"backend_url": "file:///old/b.dbak"}`);
  Deno.writeTextFileSync(`${base}/lightningd-regtest.pid`, "4242\n");
  assertEquals(flags("upgrade", "--lightning-dir", dir), [
    ...BASE,
    `--allow-read=${dir},${base},/proc/4242/comm,/old/b.dbak,/old,${WORKER_CODE}`,
    `--allow-write=${dir},/old`,
    `--allow-net=unix:${dir}/lightning-rpc`,
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI",
  ]);
  removeNodeDir(dir);
});

Deno.test("upgrade --encrypt beside an S3 backup may reach it and the copy's endpoint, and read the secret", () => {
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  const old = "s3://bucket/old?endpoint=http://127.0.0.1:7480&path-style=1";
  Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: old }));
  const to = "s3://bucket/new?endpoint=http://127.0.0.1:7481&path-style=1";
  assertEquals(flags("upgrade", "--lightning-dir", dir, "--encrypt", "--to", to), [
    ...BASE,
    `--allow-read=${dir},${base},/tmp,${SIGV4_MODULE.pathname},${CRYPTO},${WORKER_CODE}`,
    `--allow-write=${dir},/tmp`,
    `--allow-net=unix:${dir}/lightning-rpc,127.0.0.1:7480,127.0.0.1:7481`,
    "--allow-env=INIT_CWD,CLN_BACKUP_CLI,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_SESSION_TOKEN,TMPDIR," +
    "CLN_BACKUP_PASSPHRASE,CLN_BACKUP_IDENTITY,CLN_BACKUP_NEW_PASSPHRASE",
  ]);
  removeNodeDir(dir);
});

Deno.test("upgrade --encrypt of a server backup may reach its server and read what a fetched copy takes", () => {
  const dir = makeNodeDir();
  const base = Deno.realPathSync(`${dir}/..`);
  const url = `socket+tls:127.0.0.1:8700?fp=sha256:${"ab".repeat(32)}`;
  Deno.writeTextFileSync(`${dir}/backup.lock`, JSON.stringify({ backend_url: url }));
  assertEquals(flags("upgrade", "--lightning-dir", dir, "--encrypt"), [
    ...BASE,
    `--allow-read=${dir},${base},/tmp,${CRYPTO},${WORKER_CODE}`,
    `--allow-write=${dir},/tmp`,
    `--allow-net=unix:${dir}/lightning-rpc,127.0.0.1:8700`,
    `--allow-env=INIT_CWD,CLN_BACKUP_CLI,CLN_BACKUP_CREDENTIAL,TMPDIR,${SECRET_ENV}`,
  ]);
  removeNodeDir(dir);
});

Deno.test("a command line that does not parse gets no permission: the command explains", () => {
  for (
    const args of [
      [],
      ["frobnicate"],
      ["status"],
      ["status", "--help"],
      ["init", "file:///a", "file:///b"],
      ["restore", "fle:///b", "x"],
      ["server", "file:///b", "8700"],
    ]
  ) {
    assertEquals(flags(...args), [...BASE, "--allow-env=INIT_CWD,CLN_BACKUP_CLI"], args.join(" "));
  }
});

Deno.test("a URL without file:// beside a relative path gets its one line, not an internal error", async () => {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const dir = Deno.makeTempDirSync();
  try {
    for (
      const [args, expected] of [
        [
          ["restore", "/b/node", "x.sqlite3"],
          /^Cannot use backup URL "\/b\/node": it has no scheme/,
        ],
        [
          ["restore", "file:///b/node", "x.sqlite3", "--also", "/c"],
          /^Cannot use backup URL "\/c": it has no scheme/,
        ],
        [
          ["upgrade", "--lightning-dir", dir, "--to", "/b/new"],
          /^Cannot use backup URL "\/b\/new": it has no scheme/,
        ],
        [
          ["init", "--lightning-dir", dir, "file:///b/node", "--mirror", "/c"],
          /^Cannot use backup URL "\/c": it has no scheme/,
        ],
      ] as const
    ) {
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...flags(...args), cli, ...args],
        cwd: dir,
        env: { NO_COLOR: "1" },
      }).output();
      const lines = new TextDecoder().decode(stderr).trimEnd().split("\n");
      assertEquals(lines.length, 1, lines.join("\n"));
      assertMatch(lines[0], expected);
      assertEquals(code, 1, args.join(" "));
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a path Deno's flags cannot name is refused in one line", () => {
  let message = "";
  try {
    flags("status", "file:///b/a,b");
  } catch (error) {
    message = (error as Error).message;
  }
  assertMatch(message, /^Cannot grant access to "\/b\/a,b": .*choose a path without one$/);
});

Deno.test("a permission the table forgot is reported as a bug in the table, exit 3", async () => {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", cli, "status", "file:///nonexistent/backup"],
    env: { NO_COLOR: "1" },
  }).output();
  assertEquals(code, 3);
  assertMatch(
    new TextDecoder().decode(stderr),
    /^Internal error in "status" \(a bug in backup-cli's permission table, lib\/cli\/permissions\.ts: .*\): Requires read access to "\/nonexistent\/backup"/,
  );
});

Deno.test("a restore under its grants reads a large backup ahead in its worker", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-grants-" });
  try {
    const path = `${dir}/backup`;
    parentChildDatabase(`${dir}/source.sqlite3`, 9);
    createFileBackup(path, { version: 9, path: `${dir}/source.sqlite3` });
    const writer = FileBackend.open(`file://${path}`, path);
    try {
      // Past the 8 MiB of logs from which a reader starts its read-ahead worker (random hex
      // compresses to about half).
      for (let version = 10; version < 180; version++) {
        const blob = Array.from(
          crypto.getRandomValues(new Uint8Array(64 * 1024)),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("");
        await writer.append({ version, statements: [`SELECT '${blob}'`, bump(version - 1)] });
      }
    } finally {
      writer.close();
    }
    const args = ["restore", `file://${path}`, `${dir}/restored.sqlite3`];
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...denoFlags(commandGrants(args, dir)), cli, ...args],
      env: { NO_COLOR: "1" },
    }).output();
    const errors = new TextDecoder().decode(stderr);
    assertEquals(code, 0, errors);
    // A worker refused its code fails apart from the restore, which then reads on its own.
    assert(!/Requires read access/.test(errors), errors);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("doctor may reach every S3 destination backup.lock names, whose lifecycle rules it reads", () => {
  // It was granted the backend_url's endpoint alone: an S3 mirror or async copy beside a file
  // backup got "cannot check the lifecycle rules ... Requires net access" instead of the check.
  const dir = makeNodeDir();
  writeLockFile(dir, {
    backend_url: `file://${dir}/../backup`,
    mirror_urls: ["s3://bucket/a?endpoint=http://127.0.0.1:7480&path-style=1"],
    async_urls: ["s3://bucket/b?endpoint=http://127.0.0.1:7481&path-style=1"],
  });
  const net = flags("doctor", "--lightning-dir", dir).filter((f) => f.startsWith("--allow-net"));
  assertEquals(net, ["--allow-net=127.0.0.1:7480,127.0.0.1:7481"]);
  removeNodeDir(dir);
});
