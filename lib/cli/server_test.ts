import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";
import { server } from "./server.ts";
import { serverRootUrl } from "./server_args.ts";
import { pathToFileURL } from "node:url";
import { BufferedOutput } from "../../tests/support/cli_testing.ts";
import { sharedCli, sharedDir } from "../../tests/support/installed_deno.ts";
import { existsSync } from "../fs/exists.ts";

Deno.test("server node commands: a relative root is the operator's, a missing one is named", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    // deno task runs in the checkout: the root must still land where the operator is (a
    // stand-in environment: tests run in parallel in one process).
    const env = { get: (name: string) => name === "INIT_CWD" ? dir : undefined };
    assertEquals(serverRootUrl("root", env), pathToFileURL(`${dir}/root`).href);
    assertEquals(serverRootUrl("file:///elsewhere/root", env), "file:///elsewhere/root");
    // A colon in a path (a date, a host:port) does not make it a URL.
    assertEquals(serverRootUrl("/srv/b:2026", env), pathToFileURL("/srv/b:2026").href);
    assertEquals(serverRootUrl("roots/b:2026", env), pathToFileURL(`${dir}/roots/b:2026`).href);
    assertEquals(serverRootUrl("b:2026", env), pathToFileURL(`${dir}/b:2026`).href);
    // A URL still: refused as one, never a directory made under a mistyped scheme's name.
    for (const url of ["fiel:///srv", "file:srv", "socket:host:8700", "s3://bucket"]) {
      assertEquals(serverRootUrl(url, env), url);
    }

    // A mistyped root lists nothing, as an empty root would: it is refused instead.
    const missing = new BufferedOutput();
    assertEquals(await server(["list-nodes", `${dir}/rooot`], missing), 1);
    assertEquals(missing.stdout, []);
    assertEquals(missing.stderr.length, 1);
    assertMatch(
      missing.stderr[0],
      /^Cannot list nodes: ".*\/rooot" is not a server root \(it has no "nodes" directory\): check the path; "server add-node .*\/rooot NAME" makes one$/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server node commands' errors start with what they could not do, not serving", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    const run = async (args: string[]) => {
      const output = new BufferedOutput();
      assertEquals(await server(args, output), 1);
      return output.stderr.join("\n");
    };
    assertEquals(await server(["add-node", dir, "alice"], new BufferedOutput()), 0);
    assertMatch(await run(["add-node", dir, "alice"]), /^Cannot add node: node "alice" exists/);
    assertMatch(await run(["remove-node", dir, "bob"]), /^Cannot remove node: there is no node/);
    assertMatch(await run(["add-node", dir, "bad name"]), /^Cannot add node: "bad name" is not/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server node commands have their own help and usage", async () => {
  const help = new BufferedOutput();
  assertEquals(await server(["add-node", "--help"], help), 0);
  assertMatch(help.stdout[0], /^Usage: cln-backup server add-node <root> <name>\n/);
  assert(!help.text.includes("--allow-v1"), help.text);

  const usage = async (args: string[]) => {
    const output = new BufferedOutput();
    assertEquals(await server(args, output), 2, output.transcript);
    return output.stderr.join("\n");
  };
  assertEquals(
    await usage(["list-nodes", "/srv", "x"]),
    `Usage error: "server list-nodes" takes <root>, got 2 argument(s): see ` +
      `"cln-backup server list-nodes --help"`,
  );
  // An unset shell variable: "" would be the current directory, made a root unseen.
  assertEquals(
    await usage(["list-nodes", ""]),
    `Usage error: "server list-nodes" got an empty <root> (an unset shell variable?): give ` +
      `it: see "cln-backup server list-nodes --help"`,
  );
  // Serving's options mean nothing to a node command.
  assertMatch(await usage(["add-node", "/srv", "n1", "--quota-bytes", "5"]), /'--quota-bytes'/);
});

Deno.test("server remove-node keeps the backup, and add-node gives it back under a new key", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    const added = new BufferedOutput();
    assertEquals(await server(["add-node", dir, "alice"], added), 0, added.transcript);
    // The server makes the backup at the node's first write.
    Deno.mkdirSync(`${dir}/nodes/alice/backup`);
    Deno.writeTextFileSync(`${dir}/nodes/alice/backup/kept`, "x");
    assertEquals(await server(["remove-node", dir, "alice"], new BufferedOutput()), 0);
    const again = new BufferedOutput();
    assertEquals(await server(["add-node", dir, "alice"], again), 0, again.transcript);
    assertEquals(Deno.readTextFileSync(`${dir}/nodes/alice/backup/kept`), "x");
    assert(added.stdout[2] !== again.stdout[2], "the same key twice");
    assertEquals(added.stdout[0], `node alice added; its backup will be ${dir}/nodes/alice/backup`);
    // A new node given a former one's name would find that backup, and its init refused.
    assertEquals(
      again.stdout[0],
      `node alice added, with the backup kept at ${dir}/nodes/alice/backup since its removal: ` +
        `for another node than the one removed, move that directory away before its init`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server list-nodes shows the backups remove-node kept, marked as having no key", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    for (const name of ["alice", "bob", "carol"]) {
      assertEquals(await server(["add-node", dir, name], new BufferedOutput()), 0);
    }
    Deno.mkdirSync(`${dir}/nodes/bob/backup`);
    Deno.mkdirSync(`${dir}/nodes/carol/backup`);
    assertEquals(await server(["remove-node", dir, "bob"], new BufferedOutput()), 0);
    // Removed with its backup moved away: nothing of it is left to show.
    assertEquals(await server(["remove-node", dir, "carol"], new BufferedOutput()), 0);
    Deno.removeSync(`${dir}/nodes/carol/backup`);
    // Removed again: said as what it is, not as a name that never was.
    const again = new BufferedOutput();
    assertEquals(await server(["remove-node", dir, "bob"], again), 1);
    assertEquals(again.stderr, [
      `Cannot remove node: node "bob" has no key (removed already, or never added): nothing to ` +
      `remove; its backup stays at ${dir}/nodes/bob/backup`,
    ]);
    const listed = new BufferedOutput();
    assertEquals(await server(["list-nodes", dir], listed), 0, listed.transcript);
    assertEquals(listed.stdout, [
      `alice\t${dir}/nodes/alice/backup`,
      `bob\t${dir}/nodes/bob/backup\tno key (removed, or never added): its backup is kept; "server add-node ` +
      `${dir} bob" gives it back under a new key`,
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server says what to do when its port or its metrics' port is taken", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    assertEquals(await server(["add-node", dir, "alice"], new BufferedOutput()), 0);
    const busy = new BufferedOutput();
    assertEquals(await server([`file://${dir}`, `127.0.0.1:${port}`, "--allow-plain"], busy), 1);
    assertEquals(busy.stdout, []);
    assertEquals(busy.stderr, [
      `Cannot serve backup: cannot listen on 127.0.0.1:${port}: Address already in use: ` +
      `another program (another server?) listens there: stop it, or choose another port in ` +
      `<addr:port>`,
    ]);
    // The metrics' port is tried first: nothing is served, and nothing logged, before.
    const metrics = new BufferedOutput();
    const args = [`file://${dir}`, "127.0.0.1:0", "--allow-plain", "--metrics"];
    assertEquals(await server([...args, `127.0.0.1:${port}`], metrics), 1);
    assertEquals(metrics.stdout, []);
    assertEquals(metrics.stderr.length, 1);
    assertMatch(
      metrics.stderr[0],
      /^Cannot serve backup: cannot serve metrics on 127\.0\.0\.1:\d+: Address already in use: .*choose another port in --metrics$/,
    );
    // Off loopback is a usage error, found before anything listens.
    const open = new BufferedOutput();
    assertEquals(await server([...args, "0.0.0.0:9464"], open), 2);
    assertEquals(open.stdout, []);
    assertMatch(open.stderr[0], /^Usage error: --metrics: metrics listen on loopback only/);
  } finally {
    taken.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server init-tls refuses a root of another user, whose server could not read the key", async () => {
  if (Deno.uid() !== 0) return; // Needs chown to play the server's user.
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    // As add-node does: made here, tls.key (mode 0600) would be this user's, and the server,
    // run as the root's owner, would stop at start, unable to read it.
    Deno.chownSync(dir, 4321, 4321);
    const output = new BufferedOutput();
    assertEquals(await server(["init-tls", dir], output), 1);
    assertEquals(output.stdout, [], "no fingerprint printed");
    assertEquals(output.stderr, [
      `Cannot make TLS certificate: "${dir}" belongs to user 4321, and this runs as user 0: ` +
      `the server, running as the root's owner, could not read a key made here, so none was: ` +
      `run it as that user: sudo -u "#4321" cln-backup server init-tls '${dir}'`,
    ]);
    assertEquals([...Deno.readDirSync(dir)], [], "tls.key or tls.crt left behind");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server add-node refuses a root of another user, whose server could not read the key", async () => {
  if (Deno.uid() !== 0) return; // Needs chown to play the server's user.
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    Deno.chownSync(dir, 4321, 4321);
    const output = new BufferedOutput();
    assertEquals(await server(["add-node", dir, "alice"], output), 1);
    assertEquals(output.stdout, [], "no credential printed");
    assertEquals(output.stderr, [
      `Cannot add node: "${dir}" belongs to user 4321, and this runs as user 0: the server, ` +
      `running as the root's owner, could not read a key made here, so none was: run it as ` +
      `that user: sudo -u "#4321" cln-backup server add-node '${dir}' 'alice'`,
    ]);
    // Nothing is left of it: the same add-node as the right user goes in. Not even `nodes`,
    // which, this user's and 0700, would keep that user out of the root.
    assertEquals(existsSync(`${dir}/nodes`), false, "nodes/ left behind");

    // A root that has nodes already keeps its `nodes` and gets no node directory.
    Deno.mkdirSync(`${dir}/nodes`, { mode: 0o700 });
    Deno.chownSync(`${dir}/nodes`, 4321, 4321);
    assertEquals(await server(["add-node", dir, "alice"], new BufferedOutput()), 1);
    assertEquals([...Deno.readDirSync(`${dir}/nodes`)], []);
    assertEquals(Deno.statSync(`${dir}/nodes`).uid, 4321);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server add-node takes a root root owns from a user its group lets write it", async () => {
  if (Deno.uid() !== 0) return; // Needs setpriv to run as another user.
  const base = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    // A root made by root for the server's group (install -d -g clnbackup -m 0770): the key the
    // server's user makes there is its own, and a server run as root reads any file.
    Deno.chmodSync(base, 0o755);
    const root = `${base}/root`;
    Deno.mkdirSync(root, { mode: 0o770 });
    Deno.chmodSync(root, 0o770);
    Deno.chownSync(root, 0, 4321);
    Deno.mkdirSync(`${base}/deno`);
    Deno.chownSync(`${base}/deno`, 4321, 4321);
    // A Deno and CLI that user may run: this checkout may be in a private directory (CI's
    // clone), this Deno in root's npx cache.
    const { deno, cli } = sharedCli();
    const { code, stderr } = await new Deno.Command("setpriv", {
      args: [
        ...["--reuid=4321", "--regid=4321", "--clear-groups", deno],
        ...["run", "--no-config", "--no-lock", "--allow-all", cli, "server", "add-node", root],
        "alice",
      ],
      cwd: sharedDir(),
      env: { DENO_DIR: `${base}/deno`, HOME: base },
      stdout: "null",
      stderr: "piped",
    }).output();
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    assertEquals(Deno.statSync(`${root}/nodes/alice/key`).uid, 4321);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("server names a node whose key it cannot read at start, and serves the others", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    assertEquals(await server(["add-node", dir, "alice"], new BufferedOutput()), 0);
    assertEquals(await server(["add-node", dir, "bob"], new BufferedOutput()), 0);
    // A key it cannot read (one another user made, say; a directory here, as tests run as root).
    Deno.removeSync(`${dir}/nodes/bob/key`);
    Deno.mkdirSync(`${dir}/nodes/bob/key`);
    const output = new BufferedOutput();
    const served = server(
      [`file://${dir}`, "127.0.0.1:0", "--allow-plain"],
      output,
      (_, stop) => stop(),
    );
    assertEquals(await served, 0);
    assertMatch(
      output.stdout[0],
      /^error: node bob: cannot read node bob's key ".*\/nodes\/bob\/key": is a directory: it must belong to the user the server runs as, who owns the root \(was "server add-node" run as another\?\): run chown -R \d+:\d+ ".*\/nodes\/bob"; it is refused until then$/,
    );
    assertMatch(output.stdout[1], /^info: serving nodes of /);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server with a wrong number of arguments says so once, pointing to its help once", async () => {
  for (const args of [["file:///srv/cln"], ["file:///srv/cln", "127.0.0.1:8700", "extra"]]) {
    const output = new BufferedOutput();
    assertEquals(await server(args, output), 2);
    assertEquals(output.stdout, []);
    assertEquals(output.stderr, [
      `Usage error: "server" takes <url> <addr:port> or <add-node|remove-node> <root> <name> ` +
      `or <list-nodes|init-tls> <root>, got ${args.length} argument(s): see ` +
      `"cln-backup server --help"`,
    ]);
  }
});

Deno.test("server add-node refuses one backup's directory: a root there would orphan that backup", async () => {
  // The Python server's storage, converted by "upgrade <url>" and served with --allow-v1, is
  // one backup: its segments at the top. add-node there made nodes/NAME/backup, an empty
  // backup beside it; the server then took the directory for a root, its v1 clients (and a
  // node given the credential) found version 0 and stopped, and a restore got nothing.
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    const backup = `${dir}/node1.clnb`;
    Deno.mkdirSync(backup);
    Deno.writeFileSync(`${backup}/log-${"1".padStart(20, "0")}.clnb`, new Uint8Array(64));
    const output = new BufferedOutput();
    assertEquals(await server(["add-node", backup, "node1"], output), 1, output.transcript);
    assertMatch(
      output.stderr.join("\n"),
      /^Cannot add node: ".*\/node1\.clnb" is one backup, not a server root: .*nodes\/node1\/backup/,
    );
    assertEquals([...Deno.readDirSync(backup)].map((e) => e.name), [
      `log-${"1".padStart(20, "0")}.clnb`,
    ]);

    // A directory that already holds both (made so before this check) is not served: its
    // own backup would be served to no one.
    Deno.mkdirSync(`${backup}/nodes`);
    const serving = new BufferedOutput();
    assertEquals(
      await server([`file://${backup}`, "127.0.0.1:0", "--allow-plain"], serving),
      1,
      serving.transcript,
    );
    assertMatch(
      serving.stderr.join("\n"),
      /^Cannot serve backup: ".*\/node1\.clnb" holds a backup's own files beside its nodes/,
    );

    // The server's own advice for one backup served without --allow-v1 names another
    // directory for the root, not the backup's own.
    Deno.removeSync(`${backup}/nodes`);
    const plain = new BufferedOutput();
    assertEquals(await server([`file://${backup}`, "127.0.0.1:0"], plain), 1);
    assert(!plain.stderr.join("\n").includes(`add-node ${backup} NAME`), plain.transcript);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server --log-mode systemd: a refusal at start carries the error priority its log lines do", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    const start = async (args: string[], code: number) => {
      const output = new BufferedOutput();
      assertEquals(await server(args, output), code, output.transcript);
      assertEquals(output.stdout, []);
      assertEquals(output.stderr.length, 1, output.transcript);
      return output.stderr[0];
    };
    // Refused after parsing: a root without a certificate, served neither with TLS nor plain.
    assertEquals(await server(["add-node", dir, "alice"], new BufferedOutput()), 0);
    for (const mode of [["--log-mode", "systemd"], ["--log-mode=systemd"]]) {
      assertMatch(
        await start([`file://${dir}`, "127.0.0.1:0", ...mode], 1),
        /^<3>Cannot serve backup: ".*" has no TLS certificate/,
      );
    }
    // Refused as it parses: a unit's mistyped option still reads as an error in the journal.
    assertMatch(
      await start([`file://${dir}`, "127.0.0.1:0", "--log-mode", "systemd", "--quota", "1"], 2),
      /^<3>Usage error: /,
    );
    // Plain mode, the default, prints it as before.
    assertMatch(await start([`file://${dir}`, "127.0.0.1:0"], 1), /^Cannot serve backup: /);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server names a TLS certificate and key that do not go together as such, not as the address", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  const other = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    assertEquals(await server(["add-node", dir, "alice"], new BufferedOutput()), 0);
    assertEquals(await server(["init-tls", dir], new BufferedOutput()), 0);
    assertEquals(await server(["init-tls", other], new BufferedOutput()), 0);
    const serve = async () => {
      const output = new BufferedOutput();
      assertEquals(await server([`file://${dir}`, "127.0.0.1:0"], output), 1, output.transcript);
      assertEquals(output.stdout, []);
      assertEquals(output.stderr.length, 1);
      return output.stderr[0];
    };
    // Another root's key, as a restore from the wrong copy leaves it.
    Deno.copyFileSync(`${other}/tls.key`, `${dir}/tls.key`);
    assertMatch(
      await serve(),
      /^Cannot serve backup: the TLS key ".*\/tls\.key" is not the certificate's \(".*\/tls\.crt"\): put back the key it was made with, or move both away and run "server init-tls .*" \(nodes then pin its new fingerprint\)$/,
    );
    Deno.writeTextFileSync(`${dir}/tls.crt`, "garbage");
    assertMatch(
      await serve(),
      /^Cannot serve backup: the TLS certificate ".*\/tls\.crt" does not load: .*: tls\.crt must hold a PEM certificate and tls\.key its PEM private key \(server init-tls makes both\)$/,
    );
    Deno.removeSync(`${dir}/tls.key`);
    assertMatch(
      await serve(),
      /^Cannot serve backup: the TLS certificate ".*\/tls\.crt" has no key beside it, ".*\/tls\.key": put back the key it was made with, or move it away and run "server init-tls .*" \(nodes then pin its new fingerprint\)$/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
    Deno.removeSync(other, { recursive: true });
  }
});

Deno.test("server add-node and remove-node remove the key work file a killed add-node left", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    const child = new Deno.Command("true").spawn();
    await child.status;
    // Killed after its link, its work file is a second name of the key: remove-node would
    // leave the key it removes on disk, there for good.
    assertEquals(await server(["add-node", dir, "alice"], new BufferedOutput()), 0);
    const left = `${dir}/nodes/alice/key.creating-${child.pid}`;
    Deno.linkSync(`${dir}/nodes/alice/key`, left);
    const removed = new BufferedOutput();
    assertEquals(await server(["remove-node", dir, "alice"], removed), 0, removed.transcript);
    assertEquals(existsSync(left), false, removed.transcript);
    assertEquals(
      removed.stdout[0],
      `Removed "${left}", left by process ${child.pid}, a killed server add-node`,
    );
    // Killed before it: the key a node never got.
    Deno.writeTextFileSync(left, "0".repeat(64), { mode: 0o600 });
    const added = new BufferedOutput();
    assertEquals(await server(["add-node", dir, "alice"], added), 0, added.transcript);
    assertEquals([...Deno.readDirSync(`${dir}/nodes/alice`)].map((e) => e.name), ["key"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("server remove-node of a node that never wrote says it had no backup, not where one stays", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "server-cli-" });
  try {
    assertEquals(await server(["add-node", dir, "alice"], new BufferedOutput()), 0);
    // A node's backup is made by its first write: this one never wrote.
    const removed = new BufferedOutput();
    assertEquals(await server(["remove-node", dir, "alice"], removed), 0, removed.transcript);
    assertEquals(removed.stdout, [
      `node alice removed: its key no longer connects, and a running server closes the ` +
      `connections it has open within a second; it had no backup on this server`,
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
