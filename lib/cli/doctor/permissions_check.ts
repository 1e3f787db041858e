/**
 * The permissions check: the launcher's Deno flags are the ones init would write for the
 * backup backup.lock names: what they lack denies the plugin, what they add grants too much.
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

/**
 * The flags of `args` beyond what `of` grants: an `--allow-NAME=` list is compared item by
 * item (a launcher that grants one path more or less differs in that path only, and a bare
 * `--allow-NAME` grants every item); any other flag whole.
 */
function beyond(args: string[], of: string[]): string[] {
  const lists = new Map<string, string[] | "all">();
  for (const flag of of) {
    const [, name, items] = /^(--allow-[a-z]+)(?:=(.*))?$/.exec(flag) ?? [];
    if (name !== undefined) lists.set(name, items === undefined ? "all" : items.split(","));
  }
  return args.flatMap((flag) => {
    const [, name, items] = /^(--allow-[a-z]+)(?:=(.*))?$/.exec(flag) ?? [];
    if (name === undefined) return of.includes(flag) ? [] : [flag];
    const granted = lists.get(name);
    if (granted === "all") return [];
    if (granted === undefined || items === undefined) return [flag];
    const more = items.split(",").filter((item) => !granted.includes(item));
    return more.length === 0 ? [] : [`${name}=${more.join(",")}`];
  });
}

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
  const missing = beyond(flags(expected), have);
  const extra = beyond(have, flags(expected));
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
