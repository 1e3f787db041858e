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
 * The environment of a service user without a home, as backup-cli meets it under systemd:
 * `PATH` only, no colour, and this run's Deno cache ({@linkcode denoCache} says why).
 */
export async function homelessEnv(path: string): Promise<Record<string, string>> {
  return { PATH: path, HOME: "/nonexistent", DENO_DIR: await denoCache(), NO_COLOR: "1" };
}

/**
 * Runs `backup-cli args` as a user without a home ({@linkcode homelessEnv}), with `env`
 * added: its exit code, stdout and stderr lines.
 */
export async function runBackupCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string[]; err: string[] }> {
  const { code, stdout, stderr } = await new Deno.Command(BACKUP_CLI, {
    args,
    clearEnv: true,
    env: { ...await homelessEnv(`${dirname(Deno.execPath())}:/usr/bin:/bin`), ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = (bytes: Uint8Array) =>
    new TextDecoder().decode(bytes).split("\n").filter((l) => l !== "");
  return { code, out: lines(stdout), err: lines(stderr) };
}
