/**
 * How a long CLI command stops on Ctrl-C (SIGINT) or SIGTERM: promptly, removing what it was
 * writing (its work files, scratch directories, a partial base), releasing its locks, with one
 * line saying what stopped and what state it leaves, and exit code 130 (SIGINT) or 143
 * (SIGTERM).
 *
 * A worker (interrupt_worker.ts) hears the signal and sets a shared flag, which the
 * checkpoints of long synchronous work read (lib/fs/interrupt.ts). The command stops by a
 * thrown error, so its own `catch` and `finally` blocks, the ones that make a failed run leave
 * nothing, do the cleaning. A second signal ends the process at once; a `kill -9` too: the
 * next run removes what they leave (work_path.ts, scratch_dir.ts).
 *
 * @module
 */
import {
  armInterrupts,
  INTERRUPT_SIGNALS,
  Interrupted,
  type InterruptSignal,
} from "../fs/interrupt.ts";
import type { Output } from "./args.ts";

const WATCHER = new URL("./interrupt_worker.ts", import.meta.url);

/** What a command tells the scope it runs in. */
export interface InterruptScope {
  /** What an interruption from now on leaves, for the line it prints. */
  leaves(state: string): void;
}

/** The scope of a command that does not stop cleanly: Ctrl-C ends it as the default does. */
export const NO_INTERRUPTS: InterruptScope = { leaves: () => {} };

/**
 * Runs `body` with SIGINT and SIGTERM watched; an interruption is printed as
 * `Interrupted: <command> stopped; <state>` and returns 128 + the signal's number. A body that
 * finishes despite a signal (it came after the last checkpoint) returns as it would.
 */
export async function runInterruptible(
  command: string,
  state: string,
  output: Output,
  body: (scope: InterruptScope) => Promise<number>,
): Promise<number> {
  // A command line backup-cli grants nothing (one it refuses as it parses it) cannot load
  // the watcher: it runs as before, a signal ending it, and says what is wrong.
  if (Deno.permissions.querySync({ name: "read", path: WATCHER }).state !== "granted") {
    return await body(NO_INTERRUPTS);
  }
  const flag = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  const worker = new Worker(WATCHER, { type: "module" });
  try {
    await new Promise<void>((listening, failed) => {
      worker.onerror = (event) => {
        event.preventDefault();
        failed(new Error(`the signal watcher did not start: ${event.message}`));
      };
      worker.onmessage = () => listening();
      worker.postMessage(flag.buffer);
    });
    armInterrupts(flag);
    const scope: InterruptScope = { leaves: (now) => state = now };
    // The worker's message gets through only while this thread awaits (a server's answer, a
    // download, an upload), where no checkpoint runs: the command then stops there, as the
    // signal's default would, its temporary files left for the next run (scratch_dir.ts).
    const awaited = new Promise<never>((_, interrupted) => {
      worker.onmessage = (event: MessageEvent<InterruptSignal>) => {
        interrupted(new Interrupted(event.data));
      };
    });
    const running = body(scope);
    try {
      return await Promise.race([running, awaited]);
    } catch (error) {
      // A checkpoint threw it, or the signal came while awaiting; any other error is the
      // command's own failure, said as such even after a signal.
      if (!(error instanceof Interrupted)) throw error;
      running.catch(() => {}); // Left behind when the signal came during an await.
      output.err(`Interrupted: ${command} stopped; ${state}`);
      return 128 + INTERRUPT_SIGNALS[error.signal];
    }
  } finally {
    armInterrupts(undefined);
    worker.terminate();
  }
}
