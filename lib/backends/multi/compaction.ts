/**
 * Compaction of a backup with several destinations (backup.lock's `mirror_urls` and
 * `async_urls`): each destination is compacted by its own service (a file backup's
 * compactor, an S3 backup's, a server's), with that service's own hand-over with its writer,
 * off the hook's path. One runs at a time, primary first, so that the node never pays for two
 * rebuilds at once; a destination whose compaction fails is logged and reported, and the
 * others go on.
 *
 * `backup-compact` compacts every destination and answers with the primary's result (the
 * Python plugin's fields and ours) and `destinations`, each one's outcome; a second call
 * while one runs joins it. The automatic policy looks at each destination's own sizes and
 * compacts those that are due.
 *
 * @module
 */
import type { CompactionResult } from "../../compact/compact.ts";
import type {
  CompactionService,
  CompactionStatus,
  DestinationCompactionStatus,
} from "../../compact/compactor.ts";

/** One destination's compaction. */
export interface CompactionMember {
  url: string;
  /** An asynchronous copy. */
  async: boolean;
  service: CompactionService;
  /** Why it must not be compacted now, if so (a broken mirror; a copy still needing it). */
  held?: () => string | undefined;
  /** Why its policy leaves part of it alone, if so: shown as `held` when none is due. */
  waiting?: () => string | undefined;
}

/** What became of one destination in a compaction. */
export interface DestinationOutcome {
  url: string;
  async: boolean;
  result: CompactionResult | null;
  /** Why it failed, or was not compacted. */
  error: string | null;
}

/**
 * The primary's result, and every destination's outcome. In an automatic compaction that
 * left the primary out (it was not due), the first destination compacted gives the fields.
 */
export interface MultiCompactionResult extends CompactionResult {
  destinations: DestinationOutcome[];
}

export class MultiCompaction implements CompactionService {
  /** The destination compactions queued or running, one after the other. */
  #lane: Promise<unknown> = Promise.resolve();
  readonly #queued = new Map<CompactionMember, Promise<DestinationOutcome>>();
  #request: Promise<MultiCompactionResult> | undefined;
  #stopped = false;

  constructor(
    readonly members: readonly CompactionMember[],
    readonly log: (level: "info" | "unusual", message: string) => void = () => {},
  ) {}

  /** Compacts every destination, or joins the compaction of all of them under way. */
  compact(): Promise<MultiCompactionResult> {
    this.#request ??= this.#run(this.members, true).finally(() => this.#request = undefined);
    return this.#request;
  }

  /** Compacts the destinations whose policy says one is due, when none is running. */
  maybeCompact(): Promise<MultiCompactionResult> | undefined {
    if (!this.due()) return;
    return this.#run(this.members.filter((m) => this.#dueNow(m)), false);
  }

  due(): boolean {
    return this.#queued.size === 0 && this.members.some((m) => this.#dueNow(m));
  }

  /** Each service holds its automatic compactions back after one failed. */
  #dueNow(member: CompactionMember): boolean {
    return member.held?.() === undefined && member.service.due();
  }

  async #run(
    members: readonly CompactionMember[],
    requested: boolean,
  ): Promise<MultiCompactionResult> {
    const outcomes = await Promise.all(members.map((m) => this.#enqueue(m)));
    const first = (requested ? outcomes.slice(0, 1) : outcomes).find((o) => o.result !== null);
    if (first === undefined) {
      throw new Error(
        `Cannot compact backup: ${
          outcomes.map((o) => `${o.url}: ${o.error?.replace(/^Cannot compact backup: /, "")}`)
            .join("; ")
        }`,
      );
    }
    return { ...first.result!, destinations: outcomes };
  }

  /** Queues `member`'s compaction after those queued, or joins its own queued one. */
  #enqueue(member: CompactionMember): Promise<DestinationOutcome> {
    const queued = this.#queued.get(member);
    if (queued) return queued;
    const outcome = this.#lane.then(() => this.#compactOne(member));
    this.#queued.set(member, outcome);
    this.#lane = outcome.finally(() => this.#queued.delete(member));
    return outcome;
  }

  async #compactOne(member: CompactionMember): Promise<DestinationOutcome> {
    const { url, async } = member;
    const held = this.#stopped ? "the plugin is stopping" : member.held?.();
    if (held !== undefined) return { url, async, result: null, error: `not compacted: ${held}` };
    try {
      const result = await member.service.compact();
      this.log(
        "info",
        `Destination ${url} compacted in ${result.seconds} s: ${result.versions_folded} ` +
          `change(s) folded, ${result.bytes_freed} bytes freed`,
      );
      return { url, async, result, error: null };
    } catch (error) {
      const message = (error as Error).message;
      if (!this.#stopped) this.log("unusual", `Destination ${url}: ${message}`);
      return { url, async, result: null, error: message };
    }
  }

  /** The primary's status, and under `destinations` each one's. */
  status(): CompactionStatus {
    const destinations = this.members.map((m): DestinationCompactionStatus => ({
      url: m.url,
      async: m.async,
      ...m.service.status(),
      held: m.held?.() ?? (m.service.due() ? undefined : m.waiting?.()) ?? null,
    }));
    return { ...this.members[0].service.status(), destinations };
  }

  stop(): void {
    this.#stopped = true;
    for (const member of this.members) member.service.stop();
  }
}
