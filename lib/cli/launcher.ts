/**
 * The launch script `init` writes for lightningd. lightningd starts a plugin by path with no
 * arguments, so the script carries Deno's permission flags: the plugin may read only
 * `backup.lock` and the backup, write only the backup, and nothing else (no network, no
 * subprocesses, no FFI, no environment). Deno is named by absolute path, so the launch does
 * not depend on a service manager's PATH.
 *
 * @module
 */
import { writeFileDurably } from "../backends/durable_fs.ts";
import { LOCK_FILE } from "../backup/lock_file.ts";

export const LAUNCHER_NAME = "cln-backup-plugin";
export const PLUGIN_ENTRY = new URL("../../plugin.ts", import.meta.url).pathname;

export interface LaunchPlan {
  /** Absolute path of the deno binary. */
  deno: string;
  /** Absolute path of plugin.ts. */
  plugin: string;
  lightningDir: string;
  /** The backup's path (a file backup's directory or v1 file). */
  backupPath: string;
}

/** The `deno run` arguments of the least-privilege launch. */
export function launchArgs(plan: LaunchPlan): string[] {
  return [
    "run",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    `--allow-read=${plan.lightningDir}/${LOCK_FILE},${plan.backupPath}`,
    `--allow-write=${plan.backupPath}`,
    plan.plugin,
  ];
}

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export function launcherScript(plan: LaunchPlan): string {
  return [
    "#!/bin/sh",
    "# Written by `cln-backup init`. lightningd runs this as the backup plugin: Deno lets the",
    "# plugin read only backup.lock and the backup, write only the backup, and nothing else.",
    `exec ${[plan.deno, ...launchArgs(plan)].map(shellQuote).join(" ")}`,
    "",
  ].join("\n");
}

/** Writes the launcher into the lightning dir; returns its path. */
export function writeLauncher(plan: LaunchPlan): string {
  writeFileDurably(plan.lightningDir, LAUNCHER_NAME, new TextEncoder().encode(launcherScript(plan)));
  const path = `${plan.lightningDir}/${LAUNCHER_NAME}`;
  Deno.chmodSync(path, 0o755);
  return path;
}
