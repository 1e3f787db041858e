/**
 * A compaction worker's priority: below the plugin's thread, so that on a busy machine the
 * scheduler runs the thread that answers the hooks first.
 *
 * @module
 */
import { setPriority } from "node:os";

/**
 * The worker thread's nice value, above the plugin's thread's 0. On Linux a nice value
 * belongs to a thread, and raising one's own needs no privilege, only Deno's
 * `--allow-sys=setPriority` (the launcher grants it).
 */
const WORKER_NICE = 10;

/** Lowers the calling worker thread's priority; without the grant it keeps the plugin's. */
export function lowerWorkerPriority(): void {
  try {
    setPriority(0, WORKER_NICE);
  } catch {
    // Not granted: the compaction still runs, at the plugin's priority.
  }
}
