/**
 * Several synchronous destinations at once (backup.lock's `backend_url` and `mirror_urls`):
 * each change goes to all of them in parallel, so the hook costs the slowest, not the sum,
 * and `continue` waits for every one.
 *
 * When one fails, the default stops the node (every later change is refused), as with one
 * destination. With `mirror_failure: "degrade"` the others go on: the failed one is dropped
 * for good with a BROKEN log line, and `backup-status` shows an alarm until the plugin is
 * restarted with the destination repaired (and caught up: a destination that lacks changes
 * stops the node at the next start, since it is no longer a copy of the node). The rewind
 * at start and the change after it stop the node under "degrade" too (see {@linkcode #all}).
 *
 * A mirror found at its start to hold another backup than the one backup.lock ties to it
 * (`backup_ids`: another node's, a mount swapped), or on a server that holds none of the node
 * any more, or whose server answers an error when asked its id, is never written to: it stops
 * the node, or under "degrade" is dropped as a failed one is.
 *
 * @module
 */
import type { Backend, BackupState, Change, DestinationStatus } from "../backend.ts";
import { copyTieProblem, newCopyCommand } from "./mirrors.ts";
import { StoppingError } from "../stopping.ts";

export type MirrorFailure = "stop" | "degrade";

/**
 * How a destination that lacks changes is replaced: init refuses a node with a backup, and
 * backup.lock needs a `backend_url`, which the async copies follow.
 */
function remake(isPrimary: boolean, dir: string): string {
  return `with lightningd stopped, remove it from backup.lock` +
    (isPrimary ? ` (make backend_url a destination that holds every change)` : "") +
    `, then add a new copy with ${newCopyCommand(dir)}`;
}

export class MultiBackend implements Backend {
  readonly url: string;
  readonly #broken = new Map<Backend, string>();
  /** Why a write to `member` failed under `mirror_failure: "stop"` (shown; it stays live). */
  readonly #failed = new Map<Backend, string>();
  /** From a rewind until a change after it is stored everywhere: see {@linkcode #all}. */
  #rewinding = false;
  #ready: Promise<void> | undefined;

  /**
   * `ties`: the backup id backup.lock ties each member to, by its index (none: unchecked).
   * `dir`: the lightning dir as a shell word, which the advice's mirror command names.
   */
  constructor(
    readonly members: Backend[],
    readonly onFailure: MirrorFailure,
    readonly log: (level: "broken", message: string) => void = () => {},
    readonly ties: readonly (string | undefined)[] = [],
    readonly dir = "DIR",
  ) {
    this.url = members[0].url;
  }

  /** Why `member` gets no more changes, once it failed (`mirror_failure: "degrade"`). */
  brokenReason(member: Backend): string | undefined {
    return this.#broken.get(member);
  }

  #live(): Backend[] {
    return this.members.filter((m) => !this.#broken.has(m));
  }

  /**
   * Every destination ready and the backup its tie names, and they agree on where the backup
   * stands (or differ by one). Checked once: the plugin asks at its start and its first write.
   */
  ready(): Promise<void> {
    return this.#ready ??= (async () => {
      await Promise.all(this.members.map((m) => this.#noting(m, async () => await m.ready?.())));
      await Promise.all(this.members.map((m, i) => this.#checkTie(m, this.ties[i])));
      this.#agreement();
    })();
  }

  /**
   * Refuses `member` when it holds another backup than `tied`, or none any more, or its tie
   * cannot be checked (its server answered an error): it stops, or degrades.
   */
  async #checkTie(member: Backend, tied: string | undefined): Promise<void> {
    let why: string | undefined;
    try {
      why = await copyTieProblem(member, tied, false, this.dir);
    } catch (error) {
      // The plugin stopping is no destination's failure.
      if (this.onFailure === "stop" || error instanceof StoppingError) {
        return await this.#noting(member, () => Promise.reject(error));
      }
      // Its server answered an error, or could not be asked: under "degrade" a failed
      // destination, never written to.
      why = (error as Error).message;
    }
    if (why === undefined) return;
    if (this.onFailure === "stop") {
      this.#failed.set(member, why);
      throw new Error(
        `${member.url}: ${why} (or set "mirror_failure": "degrade" in backup.lock to go on ` +
          `without it)`,
      );
    }
    this.#broken.set(member, why);
    this.log(
      "broken",
      `BROKEN: destination ${member.url} gets no changes: ${why}; the node goes on with the ` +
        `other destinations ("mirror_failure": "degrade")`,
    );
  }

  /** Runs `work` of `member`; a failure, which stops the node, is kept for backup-status. */
  async #noting<T>(member: Backend, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      this.#failed.set(member, (error as Error).message);
      throw error;
    }
  }

  /**
   * The versions are all equal, or some are one change ahead of the rest (stored, then the
   * node stopped before all had it); else the destinations are not copies of one backup.
   */
  #agreement(): { top: number; behind: number | undefined } {
    const states = this.#live().map((m) => ({ url: m.url, state: m.state() }));
    const top = Math.max(...states.map((s) => s.state.version));
    const ahead = states.filter((s) => s.state.version === top);
    const behind = states.filter((s) => s.state.version !== top);
    const under = ahead[0].state.rewindVersion;
    if (behind.length === 0) return { top, behind: undefined };
    const fits = under !== undefined && ahead.every((s) => s.state.rewindVersion === under) &&
      behind.every((s) => s.state.version === under);
    if (!fits) {
      const list = states.map((s) => `${s.url} at ${s.state.version}`).join(", ");
      // Most often a destination that failed under mirror_failure "degrade" and got no more
      // changes: the node's database is at the newest, and the lagging one is made anew.
      throw new Error(
        `Cannot start backup: its destinations disagree (${list}): ` +
          `${behind.map((s) => s.url).join(", ")} lack changes the newest holds (a ` +
          `destination that failed under mirror_failure "degrade" gets no more): with ` +
          `lightningd stopped, remove each from backup.lock (backend_url must be one at ` +
          `${top}), then add a new copy with ${newCopyCommand(this.dir)}; ` +
          `should the node's database not be at ${top}, restore it from the newest first`,
      );
    }
    return { top, behind: under };
  }

  state(): BackupState {
    const live = this.#live();
    const states = live.map((m) => m.state());
    const top = states.reduce((a, b) => (b.version > a.version ? b : a));
    const same = states.every((s) => s.version === top.version);
    const rewinds = new Set(
      states.filter((s) => s.version === top.version).map((s) => s.rewindVersion),
    );
    // A destination that knows it will refuse the next change (an S3 backup that lost
    // objects): under "stop" that change stops the node, and under "degrade" too when no
    // destination left would take it, so the backup says so now.
    const refusing = live.flatMap((m, i) => {
      const why = states[i].failure;
      return why === undefined ? [] : [`${m.url}: ${why}`];
    });
    const stops = this.onFailure === "stop" || refusing.length === live.length;
    const failure = stops && refusing.length > 0 ? refusing.join("; ") : undefined;
    return {
      version: top.version,
      // With some destinations one behind, a rewind brings the others back to them.
      rewindVersion: rewinds.size === 1 ? top.rewindVersion : undefined,
      records: top.records,
      bytes: same ? top.bytes : undefined,
      tail: states.find((s) => s.tail !== undefined)?.tail,
      connection: top.connection,
      ...(top.encrypted ? { encrypted: true } : {}),
      ...(failure !== undefined ? { failure } : {}),
      destinations: this.members.map((m) => {
        const state = m.state();
        return {
          url: m.url,
          version: state.version,
          state: this.#broken.has(m) ? "broken" : this.#failed.has(m) ? "failed" : "ok",
          error: this.#broken.get(m) ?? this.#failed.get(m) ?? state.failure ?? null,
          connection: state.connection ?? null,
        } satisfies DestinationStatus;
      }),
      alarm: this.#broken.size === 0
        ? undefined
        : `BROKEN: ${this.#broken.size} of ${this.members.length} destinations failed and ` +
          `get no changes: ${[...this.#broken.keys()].map((m) => m.url).join(", ")}`,
    };
  }

  async append(change: Change): Promise<void> {
    const live = this.#live();
    const behind = live.find((m) => m.state().version !== this.state().version);
    if (behind) {
      throw new Error(
        `${behind.url} is at version ${behind.state().version}, behind the other ` +
          `destinations: it lacks a change the node committed: ` +
          remake(behind === this.members[0], this.dir),
      );
    }
    await this.#all(live, (m) => m.append(change), `change ${change.version}`);
    this.#rewinding = false;
  }

  async rewind(): Promise<void> {
    const { top } = this.#agreement();
    const ahead = this.#live().filter((m) => m.state().version === top);
    this.#rewinding = true;
    await this.#all(ahead, (m) => m.rewind(), "a rewind");
    // One behind, a destination may end in its torn record of the change just dropped (a
    // crash while the others stored it): it goes too, as a single destination's does.
    await this.cutTail();
  }

  async cutTail(): Promise<string> {
    const cut = this.#live().filter((m) => m.state().tail !== undefined);
    const lines = await Promise.all(cut.map((m) => this.#noting(m, () => m.cutTail())));
    return lines.join("; ");
  }

  /** Runs `step` on every member in parallel; a failure stops, or degrades when allowed. */
  async #all(members: Backend[], step: (m: Backend) => Promise<void>, what: string) {
    // A file backup's append throws before it returns a promise: caught here too.
    const results = await Promise.allSettled(members.map(async (m) => await step(m)));
    // The plugin is stopping (lightningd is gone): a wait cut short is no destination's failure.
    const stopping = results.find((r) =>
      r.status === "rejected" && r.reason instanceof StoppingError
    );
    if (stopping) throw (stopping as PromiseRejectedResult).reason;
    const failed = members.flatMap((m, i) => {
      const result = results[i];
      return result.status === "rejected" ? [{ m, why: (result.reason as Error).message }] : [];
    });
    if (failed.length === 0) return;
    const ok = failed.length < members.length;
    // A destination dropped at a rewind, or at the change after it, may still hold the dropped
    // change (a failed rewind; an S3 one stores nothing until that change supersedes it), at
    // the version the node then commits: the next start would take it for a copy.
    if (this.onFailure !== "degrade" || !ok || this.#rewinding) {
      // The node stops on it: backup-status names the destinations that failed, and why.
      for (const { m, why } of failed) this.#failed.set(m, why);
      const advice = !ok
        ? ""
        : this.#rewinding
        ? ` (a rewind and the change after it need every destination, under "degrade" too: ` +
          `one dropped there may still hold the change the node never committed, at the ` +
          `version it commits next, and pass for a copy: restart lightningd when it is back, ` +
          `or with lightningd stopped remove it from backup.lock)`
        : ` (set "mirror_failure": "degrade" in backup.lock to go on without it)`;
      throw new Error(failed.map(({ m, why }) => `${m.url}: ${why}`).join("; ") + advice);
    }
    for (const { m, why } of failed) {
      this.#broken.set(m, why);
      this.log(
        "broken",
        `BROKEN: destination ${m.url} failed on ${what} and gets no more changes: ${why}; ` +
          `the node goes on with ${members.length - failed.length} destination(s) ` +
          `("mirror_failure": "degrade"), and this one lags behind it from now on: with ` +
          `lightningd stopped, remove it from backup.lock (backend_url must be a destination ` +
          `that went on), then add a new copy with ${newCopyCommand(this.dir)}`,
      );
    }
  }

  close(): void {
    for (const m of this.members) m.close();
  }
}
