/**
 * This checkout's `backup-cli` as a real process: the CLI with the permissions its command
 * needs only (lib/cli/permissions.ts), a Deno found on PATH, and a clean environment.
 *
 * @module
 */
import { dirname } from "node:path";
import { denoCache } from "./installed_deno.ts";

const BACKUP_CLI = new URL("../../backup-cli", import.meta.url).pathname;

/**
 * Runs `backup-cli args` as a user without a home, from this run's Deno cache, with `env`
 * added: its exit code, stdout and stderr lines.
 */
export async function runBackupCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string[]; err: string[] }> {
  const { code, stdout, stderr } = await new Deno.Command(BACKUP_CLI, {
    args,
    clearEnv: true,
    env: {
      PATH: `${dirname(Deno.execPath())}:/usr/bin:/bin`,
      HOME: "/nonexistent",
      DENO_DIR: await denoCache(),
      NO_COLOR: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = (bytes: Uint8Array) =>
    new TextDecoder().decode(bytes).split("\n").filter((l) => l !== "");
  return { code, out: lines(stdout), err: lines(stderr) };
}
