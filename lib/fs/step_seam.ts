/**
 * A test-only seam in the CLI's multi-step commands (init, restore, upgrade), the counterpart of
 * crash_point.ts for the plugin's appends: the tests of leftovers and races kill a real
 * `deno run cli.ts ...` at the exact step where a temporary file exists, or stop two of them at
 * the same step so that they race for certain.
 *
 * `CLN_BACKUP_SEAM="<crash|pause>@<step>"` makes the process, on reaching `<step>`, kill itself
 * with SIGKILL (no cleanup, as `kill -9`), or stop itself with SIGSTOP until it gets SIGCONT.
 * It is read once, when this module loads, and only when the process may already read that
 * variable; no one is prompted. When unset, a step costs one `undefined` check.
 *
 * @module
 */
import { crashNow } from "./crash_point.ts";

/** The steps a test can stop a command at. */
export const SEAM_STEPS = [
  /** init: its checks passed, nothing written yet. */
  "init-checked",
  /** init: the database's snapshot copy (`*.snapshot-PID`) is written. */
  "init-snapshot",
  /** Creating a backup: its directory (`*.creating-PID`) is complete, not yet renamed. */
  "create-building",
  /** init: the backup is in place, backup.lock not yet written. */
  "init-before-lock",
  /** restore: the database (`*.restoring-PID`) is built, not yet linked into place. */
  "restore-building",
  /** upgrade: the converted backup (`*.upgrading-PID`) is complete, not yet renamed. */
  "upgrade-building",
] as const;
export type SeamStep = typeof SEAM_STEPS[number];

export const SEAM_ENV = "CLN_BACKUP_SEAM";

export interface Seam {
  action: "crash" | "pause";
  step: SeamStep;
}

/** Parses `"<crash|pause>@<step>"`; `undefined` for an empty value, an error for a bad one. */
export function parseSeam(spec: string | undefined): Seam | undefined {
  if (spec === undefined || spec === "") return undefined;
  const match = /^(crash|pause)@([a-z-]+)$/.exec(spec);
  const step = match?.[2] as SeamStep | undefined;
  if (!match || !SEAM_STEPS.includes(step!)) {
    throw new Error(
      `${SEAM_ENV}="${spec}" is not "<crash|pause>@<step>" (${SEAM_STEPS.join(", ")})`,
    );
  }
  return { action: match[1] as Seam["action"], step: step! };
}

function fromEnvironment(): Seam | undefined {
  const granted = Deno.permissions.querySync({ name: "env", variable: SEAM_ENV }).state;
  return granted === "granted" ? parseSeam(Deno.env.get(SEAM_ENV)) : undefined;
}

const seam: Seam | undefined = fromEnvironment();

/** Marks `step`: crashes or pauses here when the process was started so armed. */
export function atStep(step: SeamStep): void {
  if (seam?.step !== step) return;
  if (seam.action === "crash") crashNow();
  try {
    Deno.kill(Deno.pid, "SIGSTOP");
  } catch {
    // Not allowed to signal: go on, and the test sees no pause.
  }
}
