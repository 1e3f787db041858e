/**
 * The permissions check: the launcher's Deno flags are the ones init would write for the
 * backup backup.lock names: missing ones deny the plugin, extra ones grant too much.
 *
 * @module
 */
import { grantedInWords, launchArgs, type LaunchPlan, lockLaunchPlan } from "../launcher.ts";
import { RUNTIME_FLAGS } from "../runtime_flags.ts";
import type { CheckResult, Found, LauncherLine } from "./check.ts";

/**
 * Flags a launcher of an earlier init lacks, and what its plugin does without each: it
 * works, so their absence is a warning.
 */
const LATER_FLAGS = new Map<string, string>([
  ["--allow-sys=setPriority", "the compaction worker runs at the hooks' priority"],
  ...RUNTIME_FLAGS.map((flag): [string, string] => [
    flag,
    "the plugin keeps more memory after compactions",
  ]),
]);

export function permissionsCheck(found: Found, launcher: LauncherLine): CheckResult {
  const plugin = launcher.args.at(-1)!;
  let plan: LaunchPlan;
  try {
    plan = lockLaunchPlan(found.dir, found.lock!, { deno: launcher.deno, plugin });
  } catch (error) {
    return ["FAIL", (error as Error).message];
  }
  const expected = launchArgs(plan);
  const flags = (args: string[]) => args.filter((a) => a.startsWith("--"));
  const have = flags(launcher.args);
  const missing = flags(expected).filter((f) => !have.includes(f));
  const extra = have.filter((f) => !expected.includes(f));
  if (missing.length > 0 && missing.every((f) => LATER_FLAGS.has(f))) {
    return [
      "WARN",
      `the launcher lacks ${missing.join(" ")} (written by an earlier init?), so ` +
      `${missing.map((f) => LATER_FLAGS.get(f)).join(", and ")}: add ` +
      `${missing.length === 1 ? "it" : "them"} to the launcher's flags`,
    ];
  }
  if (missing.length > 0) {
    return [
      "FAIL",
      `the launcher lacks ${missing.join(" ")} for the backup backup.lock names, so the ` +
      `plugin would be denied it (backup.lock changed after init?): set the flags in the ` +
      `launcher to: ${flags(expected).join(" ")}`,
    ];
  }
  if (extra.length > 0) {
    return [
      "WARN",
      `the launcher also passes ${extra.join(" ")}: the plugin needs only ` +
      `${flags(expected).join(" ")}`,
    ];
  }
  return ["OK", `the plugin may ${grantedInWords(plan).join(" ")}`];
}
