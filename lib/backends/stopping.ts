/**
 * The plugin's lifetime as a backend sees it: an `AbortSignal` that aborts when the plugin
 * stops (lightningd closed its input, so lightningd is gone). A write's waits (a reconnect's
 * pause, a wait for an answer, a server's BUSY, an S3 retry's pause) end at once then, so the
 * plugin never outlives lightningd holding the backup's writer lock. The write being waited
 * for was never answered `continue`, so lightningd never committed it.
 *
 * @module
 */

/** A wait ended because the plugin is stopping. */
export class StoppingError extends Error {
  constructor() {
    super("the plugin is stopping: lightningd closed its input");
    this.name = "StoppingError";
  }
}

/**
 * `work`'s outcome, or a {@linkcode StoppingError} as soon as `signal` aborts, whichever comes
 * first. `work` itself is not cut short: its caller ends what it waits on (a connection).
 */
export function unlessStopping<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    const stop = () => reject(new StoppingError());
    if (signal.aborted) stop();
    signal.addEventListener("abort", stop, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", stop);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", stop);
        reject(error);
      },
    );
  });
}

/** The longest a timer waits: set longer, it fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Waits `ms` milliseconds, or fails with {@linkcode StoppingError} once `signal` aborts. A
 * retry's pause grows by its backoff at each try, past a timer's reach after enough of them:
 * it waits the longest a timer can, not no time at all.
 */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  // An aborted pause leaves no timer behind to keep the process alive.
  const clear = () => clearTimeout(timer);
  const slept = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      signal?.removeEventListener("abort", clear);
      resolve();
    }, Math.min(ms, MAX_TIMER_MS));
  });
  signal?.addEventListener("abort", clear, { once: true });
  return unlessStopping(slept, signal);
}
