/**
 * A test-only crash seam: lets the crash-safety tests (tests/crash_test.ts) kill the plugin at
 * an exact point of an append. A SIGKILL sent at a random time almost never lands in the
 * microsecond-wide windows that matter (half a record written; written but not synced; synced
 * but not yet acknowledged), so the tests ask for them by name.
 *
 * `CLN_BACKUP_CRASH_AT="<phase>:<n>"` in the environment makes the process kill itself with
 * SIGKILL at `<phase>` of its `<n>`-th append (counted from 1). Steps of other work (a roll, a
 * compaction, the CLI's commands) have their own seam, step_seam.ts. It is read once, when this module
 * loads, and only when the process may already read that variable: the plugin's launcher grants
 * no environment access, so a production plugin cannot be armed, and no one is prompted. When
 * unset, an append pays one `undefined` check.
 *
 * @module
 */
import { readableEnv } from "./readable_env.ts";

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

export const CRASH_ENV = "CLN_BACKUP_CRASH_AT";

/** Parses `"<phase>:<n>"`; `undefined` for an empty value, an error for a malformed one. */
function parseCrashPoint(spec: string | undefined): CrashPoint | undefined {
  if (spec === undefined || spec === "") return undefined;
  const match = /^([a-z-]+):([1-9]\d*)$/.exec(spec);
  const phase = match?.[1] as CrashPhase | undefined;
  if (!match || !CRASH_PHASES.includes(phase!)) {
    throw new Error(`${CRASH_ENV}="${spec}" is not "<phase>:<n>" (${CRASH_PHASES.join(", ")})`);
  }
  return new CrashPoint(phase!, Number(match[2]));
}

/** One armed crash: counts appends and names the phase to die at, on the chosen one. */
export class CrashPoint {
  #appends = 0;

  constructor(readonly phase: CrashPhase, readonly append: number) {}

  /** Called once per append: the phase at which this append must die, if it is the one. */
  next(): CrashPhase | undefined {
    return ++this.#appends === this.append ? this.phase : undefined;
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
  return parseCrashPoint(readableEnv.get(CRASH_ENV));
}

/** The crash point this process was started with, if any. */
export const crashPoint: CrashPoint | undefined = fromEnvironment();
