/**
 * The CLI's signal watcher (see interrupt_scope.ts): a worker, so that it hears SIGINT and
 * SIGTERM while the main thread is busy. It stores the first one in the shared flag, tells
 * the main thread (for when it awaits rather than works), and stops listening: a second signal then has its default
 * effect, ending the process at once (its work files are left for the next run to remove).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { INTERRUPT_SIGNALS, type InterruptSignal } from "../fs/interrupt.ts";

self.onmessage = (event: MessageEvent<SharedArrayBuffer>) => {
  const flag = new Int32Array(event.data);
  const signals = Object.keys(INTERRUPT_SIGNALS) as InterruptSignal[];
  const listeners = signals.map((signal) => {
    const listener = () => {
      Atomics.store(flag, 0, INTERRUPT_SIGNALS[signal]);
      signals.forEach((each, i) => Deno.removeSignalListener(each, listeners[i]));
      // For a main thread that awaits (a server's answer, a download): no checkpoint runs.
      self.postMessage(signal);
    };
    Deno.addSignalListener(signal, listener);
    return listener;
  });
  self.postMessage("listening");
};
