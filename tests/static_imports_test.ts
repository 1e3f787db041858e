/**
 * What Deno loads before a command runs: no npm package. The crypto libraries, the S3 signer
 * and the certificate maker are fetched on first use (the README, "Encrypted backups"), so a
 * plain restore on a new machine whose Deno cache lacks them, offline, still runs. Each run
 * here has an empty Deno cache and an npm registry that cannot be reached.
 */
import { assert, assertEquals } from "./support/assert.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function offline(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string }> {
  const denoDir = Deno.makeTempDirSync({ prefix: "empty-deno-dir-" });
  try {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--no-lock", "-A", ...args],
      cwd: ROOT,
      env: {
        DENO_DIR: denoDir,
        NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
        DENO_NO_UPDATE_CHECK: "1",
        NO_COLOR: "1",
        ...env,
      },
      stdout: "null",
    }).output();
    return { code, stderr: new TextDecoder().decode(stderr) };
  } finally {
    Deno.removeSync(denoDir, { recursive: true });
  }
}

Deno.test("backup-cli's permission script and the CLI start with no npm package at hand", async () => {
  const flags = await offline(["scripts/cli_permissions.ts", "restore", "file:///x", "/tmp/y"]);
  assertEquals(flags.code, 0, flags.stderr);
  const status = await offline(["cli.ts", "status", "file:///nonexistent/cln-backup"]);
  assert(!/npm|Failed loading/.test(status.stderr), status.stderr);
  assertEquals(status.code, 1, status.stderr);
});

Deno.test("a package fetched on first use that cannot be fetched is one line saying what to do", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "first-use-" });
  try {
    Deno.mkdirSync(`${dir}/node`);
    const runs: [string, string[]][] = [
      ["@peculiar/x509", ["cli.ts", "server", "init-tls", `${dir}/root`]],
      ["@noble/ciphers", [
        "cli.ts",
        "init",
        "--encrypt",
        "--recipient",
        "age1qqqq",
        `${dir}/node`,
        `file://${dir}/backup`,
      ]],
      ["aws4fetch", ["cli.ts", "status", "s3://bucket/p?endpoint=http://127.0.0.1:9&path-style=1"]],
    ];
    for (const [name, args] of runs) {
      const keys = { AWS_ACCESS_KEY_ID: "id", AWS_SECRET_ACCESS_KEY: "secret" };
      const { code, stderr } = await offline(args, keys);
      const lines = stderr.split("\n").filter((line) => line && !line.startsWith("Download "));
      assertEquals(lines.length, 1, stderr);
      assert(lines[0].startsWith("Cannot "), stderr);
      assert(lines[0].includes(`npm package ${name}`), stderr);
      assert(lines[0].includes("set DENO_DIR to a Deno cache that holds it"), stderr);
      assertEquals(code, 1, stderr);
    }
    // init-tls failed: the root it made for the certificate is not left behind, empty.
    assertEquals([...Deno.readDirSync(dir)].map((entry) => entry.name), ["node"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
