/**
 * A test-only crash seam: lets the crash-safety tests (tests/crash_test.ts) kill the plugin at
 * an exact point of an append. A SIGKILL sent at a random time almost never lands in the
 * microsecond-wide windows that matter (half a record written; written but not synced; synced
 * but not yet acknowledged), so the tests ask for them by name.
 *
 * `CLN_BACKUP_CRASH_AT="<phase>:<n>"` in the environment makes the process kill itself with
 * SIGKILL at `<phase>` of its `<n>`-th append (counted from 1), or at the `<n>`-th time it
 * reaches a step of a roll or a compaction ({@linkcode STEP_PHASES}). It is read once, when this module
 * loads, and only when the process may already read that variable: the plugin's launcher grants
 * no environment access, so a production plugin cannot be armed, and no one is prompted. When
 * unset, an append pays one `undefined` check.
 *
 * @module
 */

/** Where in an append the process dies. */
export const CRASH_PHASES = [
  /** Before any byte of the record is written. */
  "before-write",
  /** After the first half of the record is written (a torn tail). */
  "mid-write",
  /** After the whole record is written, before `fdatasync`. */
  "after-write-before-sync",
  /** After `fdatasync`, before the plugin answers `continue`. */
  "after-sync-before-answer",
] as const;
export type CrashPhase = typeof CRASH_PHASES[number];

/** Steps of a roll or a compaction where the process dies, counted by occurrence. */
export const STEP_PHASES = [
  /** A roll made the next log durable; the change that caused it is not yet written. */
  "roll",
  /** A new base (a compaction's, or init's) holds its first part, unsynced. */
  "compact-mid-base",
  /** A compaction's new base is durable under its name; nothing is deleted yet. */
  "compact-after-base",
  /** A compaction planned its deletes and made the first one. */
  "compact-mid-delete",
] as const;
export type StepPhase = typeof STEP_PHASES[number];

export const CRASH_ENV = "CLN_BACKUP_CRASH_AT";

/** Parses `"<phase>:<n>"`; `undefined` for an empty value, an error for a malformed one. */
export function parseCrashPoint(spec: string | undefined): CrashPoint | undefined {
  if (spec === undefined || spec === "") return undefined;
  const match = /^([a-z-]+):([1-9]\d*)$/.exec(spec);
  const phase = match?.[1] as CrashPhase | StepPhase | undefined;
  const phases: readonly string[] = [...CRASH_PHASES, ...STEP_PHASES];
  if (!match || !phases.includes(phase!)) {
    throw new Error(`${CRASH_ENV}="${spec}" is not "<phase>:<n>" (${phases.join(", ")})`);
  }
  return new CrashPoint(phase!, Number(match[2]));
}

/** One armed crash: counts appends (or steps) and dies at the chosen one. */
export class CrashPoint {
  #count = 0;

  constructor(readonly phase: CrashPhase | StepPhase, readonly nth: number) {}

  /** Called once per append: the phase at which this append must die, if it is the one. */
  next(): CrashPhase | undefined {
    if ((STEP_PHASES as readonly string[]).includes(this.phase)) return undefined;
    return ++this.#count === this.nth ? this.phase as CrashPhase : undefined;
  }

  /** Called at each step of a roll or compaction: dies at the chosen occurrence. */
  reached(step: StepPhase): void {
    if (step === this.phase && ++this.#count === this.nth) crashNow();
  }
}

/** Dies at once, as `kill -9` would: no cleanup, no flush, no answer. */
export function crashNow(): never {
  try {
    Deno.kill(Deno.pid, "SIGKILL");
  } catch {
    // Not allowed to signal: exit with the status a SIGKILL gives.
  }
  Deno.exit(137);
}

function fromEnvironment(): CrashPoint | undefined {
  const granted = Deno.permissions.querySync({ name: "env", variable: CRASH_ENV }).state;
  return granted === "granted" ? parseCrashPoint(Deno.env.get(CRASH_ENV)) : undefined;
}

/** The crash point this process was started with, if any. */
export const crashPoint: CrashPoint | undefined = fromEnvironment();
