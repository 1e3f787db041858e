/**
 * A test-only seam at the steps of multi-step work (init, restore, upgrade, a log's roll, a
 * compaction), the counterpart of crash_point.ts for the plugin's appends: the tests of
 * leftovers and races kill a real `deno run cli.ts ...` at the exact step where a temporary
 * file exists, or stop two of them at the same step so that they race for certain; the
 * compaction crash trials kill a process at each step of a compaction.
 *
 * `CLN_BACKUP_SEAM="<crash|pause>@<step>[:<n>]"` makes the process, on reaching `<step>` for
 * the `<n>`-th time (the first by default), kill itself with SIGKILL (no cleanup, as
 * `kill -9`), or stop itself with SIGSTOP until it gets SIGCONT. A compaction's steps run in
 * its worker, which reads the variable (and counts) on its own.
 * It is read once, when this module loads, and only when the process may already read that
 * variable; no one is prompted. When unset, a step costs one `undefined` check.
 *
 * @module
 */
import { crashNow } from "./crash_point.ts";
import { readableEnv } from "./readable_env.ts";

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
  /** upgrade: the converted backup is in place, backup.lock not yet rewritten. */
  "upgrade-before-lock",
  /** upgrade --encrypt, on the server: the encrypted copy is staged and checked. */
  "upgrade-staged",
  /** upgrade --encrypt, on the server: the plain backup is moved aside, the copy not in yet. */
  "upgrade-swap",
  /** upgrade --encrypt, on the node: the first segment of the encrypted copy is sent. */
  "upgrade-upload",
  /** A roll made the next log durable and sealed the live one; the change is not written. */
  "roll",
  /** A new base (a compaction's, or init's) holds its first part, unsynced. */
  "compact-mid-base",
  /** A compaction's new base is durable under its name; nothing is deleted yet. */
  "compact-after-base",
  /** A compaction planned its deletes and made the first one. */
  "compact-mid-delete",
  /** The writer's trimmed copy of its live log is durable, not yet renamed over it. */
  "compact-trim",
  /** server: it listens (its port answers); nothing served yet. */
  "server-listening",
] as const;
export type SeamStep = typeof SEAM_STEPS[number];

export const SEAM_ENV = "CLN_BACKUP_SEAM";

export interface Seam {
  action: "crash" | "pause";
  step: SeamStep;
  /** The occurrence of the step to stop at, from 1. */
  nth: number;
}

/**
 * Parses `"<crash|pause>@<step>[:<n>]"`; `undefined` for an empty value, an error for a bad
 * one.
 */
export function parseSeam(spec: string | undefined): Seam | undefined {
  if (spec === undefined || spec === "") return undefined;
  const match = /^(crash|pause)@([a-z-]+)(?::([1-9]\d*))?$/.exec(spec);
  const step = match?.[2] as SeamStep | undefined;
  if (!match || !SEAM_STEPS.includes(step!)) {
    throw new Error(
      `${SEAM_ENV}="${spec}" is not "<crash|pause>@<step>[:<n>]" (${SEAM_STEPS.join(", ")})`,
    );
  }
  return { action: match[1] as Seam["action"], step: step!, nth: Number(match[3] ?? 1) };
}

function fromEnvironment(): Seam | undefined {
  return parseSeam(readableEnv.get(SEAM_ENV));
}

const seam: Seam | undefined = fromEnvironment();
let reached = 0;

/** Marks `step`: crashes or pauses here when the process was started so armed. */
export function atStep(step: SeamStep): void {
  if (seam?.step !== step || ++reached !== seam.nth) return;
  if (seam.action === "crash") crashNow();
  try {
    Deno.kill(Deno.pid, "SIGSTOP");
  } catch {
    // Not allowed to signal: go on, and the test sees no pause.
  }
}
