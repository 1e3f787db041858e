/**
 * Probes of the launch: a script run by the very launcher text lightningd gets, with only the
 * program path swapped (same deno, same flags, same working directory), that tries accesses
 * and reports which were allowed.
 *
 * @module
 */
import { assertEquals } from "./assert.ts";
import { launcherScript, type LaunchPlan } from "../../lib/cli/launcher.ts";
import { FakeLightningd } from "./fake_lightningd.ts";

/** Runs `source` as the plugin would be run: the launcher's text, program path swapped. */
export async function runProbe(
  root: string,
  plan: LaunchPlan,
  source: string,
): Promise<Record<string, string>> {
  const probe = `${root}/probe.ts`;
  Deno.writeTextFileSync(probe, source);
  const script = `${root}/probe-launcher`;
  const text = launcherScript({ ...plan, plugin: probe });
  // The very launch the node gets, but for the program it runs.
  assertEquals(text, launcherScript(plan).replace(`'${plan.plugin}'`, `'${probe}'`));
  Deno.writeTextFileSync(script, text, { mode: 0o755 });
  const output = await new Deno.Command(script, {
    cwd: plan.lightningDir,
    clearEnv: true,
    env: { PATH: "/nonexistent" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assertEquals(output.code, 0, `probe failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/** The probe's prelude: `attempt(name, fn)` records "ok", "NotCapable", or the error. */
export const PRELUDE = `
const results: Record<string, string> = {};
async function attempt(name: string, fn: () => unknown): Promise<void> {
  try {
    await fn();
    results[name] = "ok";
  } catch (error) {
    const { name: kind, message } = error as Error;
    results[name] = kind === "NotCapable" ? kind : \`\${kind}: \${message}\`;
  }
}
`;

/**
 * Starts the plugin as lightningd does, through `launcher` with PATH pointing nowhere, and
 * commits `count` transactions; the caller stops or kills it.
 */
export async function launchAndCommit(
  dir: string,
  launcher: string,
  count: number,
): Promise<FakeLightningd> {
  const lightningd = FakeLightningd.spawn({
    lightningDir: dir,
    command: [launcher],
    env: { PATH: "/nonexistent" },
  });
  try {
    await lightningd.getmanifest();
    for (let i = 0; i < count; i++) {
      const outcome = await lightningd.transaction([`DELETE FROM vars WHERE name = 'n${i}'`]);
      assertEquals(outcome, "committed", lightningd.aborted);
    }
  } catch (error) {
    await lightningd.kill().catch(() => {});
    throw error;
  }
  return lightningd;
}
