/**
 * Paces a compaction's writes so that the plugin's appends, each waiting on its own
 * fdatasync on the same disk, never queue behind a large flush: the compaction syncs what it
 * wrote in small steps (the kernel would otherwise write back hundreds of MiB at once, and
 * the plugin's next journal commit would wait for them), and after each sync it rests as
 * long as the sync took, so it holds the disk at most about half the time.
 *
 * @module
 */

/** Bytes written between two syncs. */
const PACE_STEP_BYTES = 512 * 1024;

/** A way to sleep (a seam: the compaction worker may block; tests need not wait). */
export type Sleep = (ms: number) => void;

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread: the compaction runs on a worker of its own. */
const blockingSleep: Sleep = (ms) => {
  if (ms > 0) Atomics.wait(pause, 0, 0, ms);
};

/** Syncs a compaction's writes every `stepBytes` and rests as long as each sync took. */
export class Pacer {
  #unsynced = 0;

  /**
   * Syncs every `stepBytes` (512 KiB unless given), rests with `sleep` and times with `now`,
   * milliseconds (seams for tests).
   */
  constructor(
    readonly stepBytes: number = PACE_STEP_BYTES,
    readonly sleep: Sleep = blockingSleep,
    readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts `bytes` just written to `file`; syncs and rests once a step is full. */
  wrote(file: Deno.FsFile, bytes: number): void {
    this.#unsynced += bytes;
    if (this.#unsynced >= this.stepBytes) this.sync(file);
  }

  /** Syncs `file` now, then rests as long as that took. */
  sync(file: Deno.FsFile): void {
    this.#unsynced = 0;
    const started = this.now();
    file.syncDataSync();
    this.sleep(this.now() - started);
  }
}
