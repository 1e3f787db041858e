/**
 * Interruption checkpoints: where long synchronous work (a restore's replay, a base's parts, a
 * conversion's records) may stop once the operator pressed Ctrl-C or sent SIGTERM.
 *
 * A signal listener on the main thread never runs while that thread is busy in synchronous
 * work, so the CLI's signal watcher (lib/cli/interrupt_scope.ts) runs in a worker and stores
 * the signal in a shared flag, which {@linkcode checkInterrupted} reads. It throws
 * {@linkcode Interrupted}, which unwinds through the same `catch` and `finally` blocks as any
 * failure: what a failed step removes and releases, an interrupted one does too. Unarmed (the
 * plugin, tests), a checkpoint costs one `undefined` check.
 *
 * @module
 */

/** The signals that interrupt a CLI command, by number (stored in the flag). */
export const INTERRUPT_SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;
export type InterruptSignal = keyof typeof INTERRUPT_SIGNALS;

/** Thrown at a checkpoint after `signal` arrived; a command turns it into one line. */
export class Interrupted extends Error {
  constructor(readonly signal: InterruptSignal) {
    super(`interrupted by ${signal}`);
    this.name = "Interrupted";
  }
}

let flag: Int32Array | undefined;

/** Makes checkpoints read `shared` (0: no signal yet, else its number); `undefined` disarms. */
export function armInterrupts(shared: Int32Array | undefined): void {
  flag = shared;
}

/** The signal that arrived, if any. */
function interruptedBy(): InterruptSignal | undefined {
  const signo = flag === undefined ? 0 : Atomics.load(flag, 0);
  if (signo === 0) return undefined;
  return signo === INTERRUPT_SIGNALS.SIGINT ? "SIGINT" : "SIGTERM";
}

/** Throws {@linkcode Interrupted} once SIGINT or SIGTERM arrived. */
export function checkInterrupted(): void {
  const signal = interruptedBy();
  if (signal !== undefined) throw new Interrupted(signal);
}
