import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/support/assert.ts";
import { type LockFile, writeLockFile } from "../backup/lock_file.ts";
import {
  compileArgs,
  COMPILED_PLUGIN_NAME,
  launchArgs,
  LAUNCHER_NAME,
  launcherScript,
  launchPlan,
  lockLaunchPlan,
  parseLauncher,
  PLUGIN_ENTRY,
  WORKER_CODE,
  writeLauncher,
} from "./launcher.ts";
import { RUNTIME_FLAGS } from "./runtime_flags.ts";

const DENO = "/opt/deno/bin/deno";
/** Where the permission flags start in a launch's arguments: after `run` and the runtime flags. */
const AFTER_RUN = 1 + RUNTIME_FLAGS.length;

/** The plugin's code, which the compaction worker of a file backup loads at run time. */
const CODE = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("a file backup's launch reads backup.lock and the backup, writes the backup only", () => {
  const plan = launchPlan({
    lightningDir: "/nonexistent/ln/bitcoin",
    backendUrl: "file:///var/backups/node/",
    deno: DENO,
  });
  assertEquals(plan, {
    deno: DENO,
    plugin: PLUGIN_ENTRY,
    lightningDir: "/nonexistent/ln/bitcoin",
    backupPaths: ["/var/backups/node"],
    netAddresses: [],
    credentials: false,
    nodeCredential: false,
    caFiles: [],
    compacts: ["file"],
    scratch: false,
  });
  assertEquals(launchArgs(plan), [
    "run",
    ...RUNTIME_FLAGS,
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--allow-read=/nonexistent/ln/bitcoin/backup.lock,/nonexistent/ln/bitcoin/backup.key," +
    `/var/backups/node,${CODE}`,
    "--allow-write=/var/backups/node",
    "--allow-sys=setPriority",
    PLUGIN_ENTRY,
  ]);
});

Deno.test("a socket backup's launch may connect to the server, or only to its proxy", async () => {
  const args = (url: string) =>
    launchArgs(launchPlan({ lightningDir: "/nonexistent/ln", backendUrl: url, deno: DENO }))
      .slice(AFTER_RUN, -1);
  assertEquals(args("socket:backup.example.org:9000"), [
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--allow-read=/nonexistent/ln/backup.lock,/nonexistent/ln/backup.key,/nonexistent/ln/backup.credential",
    "--allow-net=backup.example.org:9000",
  ]);
  assertEquals(args("socket:[::1]:9000").at(-1), "--allow-net=[::1]:9000");
  assertEquals(
    args("socket:abcdef.onion:9000?proxy=socks5:127.0.0.1:9050").at(-1),
    "--allow-net=127.0.0.1:9050",
  );
  const fp = `sha256:${"ab".repeat(32)}`;
  assertEquals(
    args(`socket+tls:backup.example.org:9000?fp=${fp}`).at(-1),
    "--allow-net=backup.example.org:9000",
  );
  assertEquals(
    args(`socket+tls:abcdef.onion:9000?fp=${fp}&proxy=socks5:127.0.0.1:9050`).at(-1),
    "--allow-net=127.0.0.1:9050",
  );
  // Trusting a CA: read on its file too, and nothing else new.
  assertEquals(args("socket+tls:backup.example.org:9000?ca=/etc/cln-backup/ca.pem").slice(3), [
    "--allow-read=/nonexistent/ln/backup.lock,/nonexistent/ln/backup.key," +
    "/nonexistent/ln/backup.credential,/etc/cln-backup/ca.pem",
    "--allow-net=backup.example.org:9000",
  ]);
  assertEquals(
    args("socket+tls:abcdef.onion:9000?ca=/etc/ca.pem&proxy=socks5:127.0.0.1:9050").slice(3),
    [
      "--allow-read=/nonexistent/ln/backup.lock,/nonexistent/ln/backup.key," +
      "/nonexistent/ln/backup.credential,/etc/ca.pem",
      "--allow-net=127.0.0.1:9050",
    ],
  );
  await assertRejects(
    () => Promise.resolve().then(() => args("socket+tls:backup.example.org:9000?ca=/etc/ca,s.pem")),
    /cannot name a path with a comma/,
  );
});

Deno.test("an s3 backup's launch reads its keys beside backup.lock, reaches the endpoint only, writes only its compaction's scratch directory", () => {
  const args = (url: string) =>
    launchArgs(launchPlan({ lightningDir: "/nonexistent/ln", backendUrl: url, deno: DENO }))
      .slice(AFTER_RUN + 3, -1);
  assertEquals(args("s3://bucket/node?endpoint=http://127.0.0.1:7480&path-style=1"), [
    "--allow-read=/nonexistent/ln/backup.lock,/nonexistent/ln/backup.key,/nonexistent/ln/backup-s3.credentials," +
    `${WORKER_CODE},/nonexistent/ln/cln-backup-scratch`,
    "--allow-write=/nonexistent/ln/cln-backup-scratch",
    "--allow-sys=setPriority",
    "--allow-net=127.0.0.1:7480",
  ]);
  // Amazon S3, the bucket in the host name.
  assertEquals(
    args("s3://bucket/node?region=eu-west-1").at(-1),
    "--allow-net=bucket.s3.eu-west-1.amazonaws.com:443",
  );
  assertEquals(
    args("s3://bucket/n?endpoint=https://s3.example.com:9000&path-style=1").at(-1),
    "--allow-net=s3.example.com:9000",
  );
});

Deno.test("several destinations: each one's grants, together, and nothing else", () => {
  const s3 = "s3://bucket/node?endpoint=http://127.0.0.1:7480&path-style=1";
  const args = (lock: LockFile) =>
    launchArgs(lockLaunchPlan("/nonexistent/ln", lock, { deno: DENO })).slice(AFTER_RUN + 3, -1);
  // A file primary, an S3 mirror: the file backup, the keys' file, the endpoint; both are
  // compacted (the S3 one in the scratch directory).
  assertEquals(args({ backend_url: "file:///var/backups/node", mirror_urls: [s3] }), [
    "--allow-read=/nonexistent/ln/backup.lock,/nonexistent/ln/backup.key," +
    `/var/backups/node,${CODE},/nonexistent/ln/backup-s3.credentials,` +
    "/nonexistent/ln/cln-backup-scratch",
    "--allow-write=/var/backups/node,/nonexistent/ln/cln-backup-scratch",
    "--allow-sys=setPriority",
    "--allow-net=127.0.0.1:7480",
  ]);
  // The same as an async destination.
  assertEquals(
    args({ backend_url: "file:///var/backups/node", async_urls: [s3] }),
    args({ backend_url: "file:///var/backups/node", mirror_urls: [s3] }),
  );
  // An S3 primary, a file mirror, a socket server behind a proxy as async: the async copy
  // catches up by fetching the S3 primary into the scratch directory.
  assertEquals(
    args({
      backend_url: s3,
      mirror_urls: ["file:///mnt/disk/node"],
      async_urls: ["socket:abcdef.onion:9000?proxy=socks5:127.0.0.1:9050"],
    }),
    [
      "--allow-read=/nonexistent/ln/backup.lock,/nonexistent/ln/backup.key," +
      `/nonexistent/ln/backup.credential,/mnt/disk/node,${CODE},` +
      "/nonexistent/ln/backup-s3.credentials,/nonexistent/ln/cln-backup-scratch",
      "--allow-write=/mnt/disk/node,/nonexistent/ln/cln-backup-scratch",
      "--allow-sys=setPriority",
      "--allow-net=127.0.0.1:7480,127.0.0.1:9050",
    ],
  );
  // A file primary and a server mirror: the server compacts its own; no scratch directory.
  assertEquals(
    args({ backend_url: "file:///m", mirror_urls: ["socket:127.0.0.1:9000"] }),
    [
      "--allow-read=/nonexistent/ln/backup.lock,/nonexistent/ln/backup.key," +
      `/nonexistent/ln/backup.credential,/m,${CODE}`,
      "--allow-write=/m",
      "--allow-sys=setPriority",
      "--allow-net=127.0.0.1:9000",
    ],
  );
  // Two file backups: both read and written, and compacted.
  assertEquals(
    args({ backend_url: "file:///a", async_urls: ["file:///b"] }).slice(1),
    ["--allow-write=/a,/b", "--allow-sys=setPriority"],
  );
});

Deno.test("launch plans refuse what Deno's flags cannot say", async () => {
  await assertRejects(
    () => launchPlan({ lightningDir: "/ln", backendUrl: "gs://bucket/x" }),
    /unknown scheme/,
  );
  await assertRejects(
    () => launchArgs(launchPlan({ lightningDir: "/ln", backendUrl: "file:///backups/a,b" })),
    /comma/,
  );
});

Deno.test("a compiled cln-backup cannot write a launcher: it is not deno", async () => {
  await assertRejects(
    () => launchPlan({ lightningDir: "/ln", backendUrl: "file:///b", deno: "/usr/bin/cln-backup" }),
    /runs as "\/usr\/bin\/cln-backup", not deno: .*compile:plugin/,
  );
});

Deno.test("the lock file is granted under the lightning dir's real path", () => {
  const root = Deno.realPathSync(Deno.makeTempDirSync());
  try {
    Deno.mkdirSync(`${root}/real`);
    Deno.symlinkSync(`${root}/real`, `${root}/link`);
    const plan = launchPlan({
      lightningDir: `${root}/link`,
      backendUrl: `file://${root}/backup`,
      deno: DENO,
    });
    assertEquals(
      launchArgs(plan)[AFTER_RUN + 3],
      `--allow-read=${root}/real/backup.lock,${root}/real/backup.key,${root}/backup,${CODE}`,
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("compile builds the plugin with the launch's flags", () => {
  const plan = launchPlan({ lightningDir: "/nonexistent/ln", backendUrl: "file:///b", deno: DENO });
  assertEquals(compileArgs(plan, "/nonexistent/ln/cln-backup-plugin-bin"), [
    "compile",
    ...launchArgs(plan).slice(1, -1),
    "--include",
    `${CODE}/compact/worker.ts`,
    "--include",
    `${CODE}/crypto/primitives.ts`,
    "--include",
    `${CODE}/backends/file/read_ahead_worker.ts`,
    "--output",
    "/nonexistent/ln/cln-backup-plugin-bin",
    PLUGIN_ENTRY,
  ]);
});

Deno.test("the launcher names deno by absolute path, quoted, and reads back", () => {
  const root = Deno.makeTempDirSync();
  try {
    const plan = launchPlan({
      lightningDir: root,
      backendUrl: `file://${root}/it's%20here`,
      deno: "/home/o'neil/deno",
    });
    const path = writeLauncher(plan);
    assertEquals(path, `${root}/${LAUNCHER_NAME}`);
    assertEquals(Deno.statSync(path).mode! & 0o777, 0o755);
    const text = Deno.readTextFileSync(path);
    assertEquals(text, launcherScript(plan));
    assert(text.startsWith("#!/bin/sh\n"));
    assert(
      text.includes(`exec '/home/o'\\''neil/deno' 'run' '${RUNTIME_FLAGS[0]}' '--no-prompt'`),
      text,
    );
    assertEquals(parseLauncher(text), { deno: "/home/o'neil/deno", args: launchArgs(plan) });
    assertEquals(parseLauncher("#!/bin/sh\nexec deno run plugin.ts\n"), undefined);
    assertEquals(parseLauncher("#!/bin/sh\n"), undefined);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("compile:plugin's script builds its command from the node's backup.lock", async () => {
  const dir = Deno.realPathSync(Deno.makeTempDirSync());
  try {
    const url = `file://${dir}/backup`;
    writeLockFile(dir, { backend_url: url });
    const script = new URL("../../scripts/compile_plugin.ts", import.meta.url).pathname;
    const run = (...args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-env", "--allow-run", script, ...args],
        env: { NO_COLOR: "1" },
      }).output();
    const dry = await run("--", "--lightning-dir", dir, "--dry-run");
    assertEquals(dry.code, 0, new TextDecoder().decode(dry.stderr));
    const plan = launchPlan({ lightningDir: dir, backendUrl: url });
    assertEquals(
      new TextDecoder().decode(dry.stdout),
      `deno ${compileArgs(plan, `${dir}/${COMPILED_PLUGIN_NAME}`).join(" ")}\n`,
    );
    const missing = await run("--lightning-dir", `${dir}/nowhere`, "--dry-run");
    assertEquals(missing.code, 1);
    assert(new TextDecoder().decode(missing.stderr).startsWith("Cannot compile the plugin: no"));
    const help = await run("--", "--help");
    assertEquals(help.code, 0, new TextDecoder().decode(help.stderr));
    assertMatch(new TextDecoder().decode(help.stdout), /^Usage: deno task compile:plugin -- /);
    const unknown = await run("--", "--lightning", dir);
    assertEquals(unknown.code, 2);
    assertEquals(
      new TextDecoder().decode(unknown.stderr),
      `Usage error: Unknown option '--lightning': see "deno task compile:plugin -- --help"\n`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compile:plugin's binary gets every destination of backup.lock, as the launcher does", async () => {
  const dir = Deno.realPathSync(Deno.makeTempDirSync());
  try {
    const lock: LockFile = {
      backend_url: `file://${dir}/backup`,
      mirror_urls: [`file://${dir}/mirror`],
      async_urls: ["socket:127.0.0.1:8700"],
    };
    writeLockFile(dir, lock);
    Deno.writeTextFileSync(`${dir}/backup.key`, "{}");
    const script = new URL("../../scripts/compile_plugin.ts", import.meta.url).pathname;
    const dry = await new Deno.Command(Deno.execPath(), {
      // The directory given: under `deno task test`, INIT_CWD names the checkout.
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        "--allow-run",
        script,
        "--lightning-dir",
        dir,
        "--dry-run",
      ],
      env: { NO_COLOR: "1" },
    }).output();
    assertEquals(dry.code, 0, new TextDecoder().decode(dry.stderr));
    const printed = new TextDecoder().decode(dry.stdout).trimEnd();
    const expected = compileArgs(lockLaunchPlan(dir, lock), `${dir}/${COMPILED_PLUGIN_NAME}`);
    assertEquals(printed, `deno ${expected.join(" ")}`);
    assert(printed.includes(`--allow-write=${dir}/backup,${dir}/mirror`), printed);
    assert(printed.includes("--allow-net=127.0.0.1:8700"), printed);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the launcher's comment says what its flags grant, destination by destination", () => {
  const comment = (options: { backendUrl: string; encrypted?: boolean }) =>
    launcherScript(launchPlan({ lightningDir: "/ln", deno: "/bin/deno", ...options }))
      .split("\n").filter((line) => line.startsWith("# ")).slice(1);
  assertEquals(comment({ backendUrl: "file:///mnt/backup" }), [
    "# plugin read only backup.lock, backup.key, the file backups and its own code,",
    "# write only the file backups,",
    "# and connect nowhere.",
  ]);
  assertEquals(comment({ backendUrl: "socket+tls:b.example:8700?ca=/etc/ca.pem" }), [
    "# plugin read only backup.lock, backup.key, backup.credential and the CA file,",
    "# write nothing,",
    "# and connect only to b.example:8700.",
  ]);
  // Only the node can compact an encrypted server backup: it works in its scratch directory.
  assertEquals(
    comment({ backendUrl: "socket:127.0.0.1:8700?proxy=socks5:127.0.0.1:9050", encrypted: true }),
    [
      "# plugin read only backup.lock, backup.key, backup.credential, cln-backup-scratch and " +
      "its own code,",
      "# write only cln-backup-scratch,",
      "# and connect only to 127.0.0.1:9050.",
    ],
  );
});
