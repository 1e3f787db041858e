/**
 * What Deno loads before a command runs: no npm package. The crypto libraries, the S3 signer
 * and the certificate maker are fetched on first use (the README, "Encrypted backups"), so a
 * plain restore on a new machine whose Deno cache lacks them, offline, still runs. Each run
 * here has an empty Deno cache and an npm registry that cannot be reached.
 */
import { assert, assertEquals } from "./support/assert.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function offline(args: string[]): Promise<{ code: number; stderr: string }> {
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
