/**
 * Which compaction service the plugin runs for the backup it writes: a file backup's
 * compactor, an S3 backup's, a server's, and for several destinations (`mirror_urls`,
 * `async_urls`) each destination's own, one after the other (lib/backends/multi/compaction.ts).
 *
 * Async copies are compacted too, by the same policy on their own sizes, while open and not
 * failing: left alone they would grow without bound, as the backup did before compaction.
 * The primary (`backend_url`) is the one they catch up from after a restart or an outage, so
 * its compaction must keep every change a copy lacks, and the last change a copy holds, which
 * its next start drops and copies again ({@linkcode AsyncCopy.resumesFrom}): a file primary
 * folds no further than where the copy furthest behind resumes ({@linkcode limitTarget}); an
 * S3 or server primary, which picks its fold point itself, is compacted only when every copy
 * resumes at or above its version before the newest. While a copy has not been reached in this
 * run (before the node's first write, or failing since), the primary is not compacted at all:
 * it holds what that copy will need, and `backup-status` says so under
 * `compaction.destinations[0].held`. A copy that fails for good thus keeps the primary from
 * being compacted past where it stopped: remove it from `async_urls`.
 *
 * @module
 */
import type { Backend } from "../backends/backend.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { SCRATCH_DIR } from "../backends/plugin_scratch.ts";
import { MultiBackend } from "../backends/multi/backend.ts";
import { WithAsyncCopies } from "../backends/multi/with_async_copies.ts";
import type { AsyncCopy } from "../backends/multi/async_copy.ts";
import { AsyncCopyCompaction } from "../backends/multi/async_copy_compaction.ts";
import { type CompactionMember, MultiCompaction } from "../backends/multi/compaction.ts";
import { type CompactionService, Compactor } from "../compact/compactor.ts";
import type { CompactionPolicy } from "../compact/policy.ts";
import { limitTarget } from "../compact/target_limit.ts";
import type { RemoteDestinations } from "./startup.ts";

type Policy = () => CompactionPolicy;
type Log = (level: "info" | "unusual", message: string) => void;

/**
 * One destination's own service; `limit` caps a file backup's fold point. A remote one's
 * comes from `remote`, loaded when backup.lock names one (startup.ts).
 */
function serviceOf(
  backend: Backend,
  policy: Policy,
  scratch: string,
  remote: RemoteDestinations | undefined,
  limit?: () => number | undefined,
): CompactionService | undefined {
  if (backend instanceof FileBackend) {
    return new Compactor(limit ? limitTarget(backend, limit) : backend, policy);
  }
  return remote?.remoteCompaction(backend, policy, scratch);
}

/**
 * The lowest version an async copy may resume from (its next start drops its last change), or
 * why one cannot say (not reached yet).
 */
function copiesVersion(copies: readonly AsyncCopy[]): number | string {
  let lowest = Infinity;
  for (const copy of copies) {
    const version = copy.resumesFrom();
    if (version === null) {
      return `async copy ${copy.url} is ${copy.status().state}: it may need every change ` +
        `the primary holds`;
    }
    lowest = Math.min(lowest, version);
  }
  return lowest;
}

/**
 * The compaction service for the plugin's `backend`, made with the policy in force;
 * `undefined` when the plugin does not compact it. `dir` is the lightning dir; `remote`, the
 * code of `socket:` and `s3://` destinations, is the one startup.ts loaded (`Startup.remote`):
 * without it, only file backups are compacted.
 */
export function compactionFor(
  backend: Backend,
  dir: string,
  log: Log,
  remote?: RemoteDestinations,
): ((policy: Policy) => CompactionService) | undefined {
  if (backend instanceof MultiBackend || backend instanceof WithAsyncCopies) {
    return (policy) => new MultiCompaction(members(backend, dir, policy, remote), log);
  }
  if (backend instanceof FileBackend || remote?.isRemote(backend)) {
    return (policy) => serviceOf(backend, policy, `${dir}/${SCRATCH_DIR}`, remote)!;
  }
}

function members(
  backend: MultiBackend | WithAsyncCopies,
  dir: string,
  policy: Policy,
  remote: RemoteDestinations | undefined,
): CompactionMember[] {
  const copies = backend instanceof WithAsyncCopies ? backend.copies : [];
  const sync = backend instanceof WithAsyncCopies ? backend.primary : backend;
  const mirrors = sync instanceof MultiBackend ? sync.members : [sync];
  // Each S3 destination's compaction empties a scratch directory of its own.
  let n = 0;
  const scratch = () => `${dir}/${SCRATCH_DIR}/compact-${n++}`;
  const result: CompactionMember[] = [];
  for (const [i, mirror] of mirrors.entries()) {
    const broken = () => {
      const why = sync instanceof MultiBackend ? sync.brokenReason(mirror) : undefined;
      return why === undefined ? undefined : `it is broken (${why})`;
    };
    // The primary keeps what the async copies lack.
    const gated = i === 0 && copies.length > 0;
    const lowest = () => copiesVersion(copies);
    const limit = gated
      ? () => {
        const version = lowest();
        return typeof version === "number" ? version : undefined;
      }
      : undefined;
    const service = serviceOf(mirror, policy, scratch(), remote, limit);
    if (service === undefined) continue;
    const held = !gated ? broken : () => {
      const version = lowest();
      if (typeof version === "string") return version;
      const { version: top, rewindVersion } = mirror.state();
      if (mirror instanceof FileBackend || version >= (rewindVersion ?? top)) return broken();
      return `an async copy may resume from version ${version}, behind the primary's ${
        rewindVersion ?? top
      }: the primary keeps what it lacks until it catches up`;
    };
    // A file primary is compacted up to the copy, and its policy weighs only what it may
    // fold: a copy that stays behind keeps the sealed logs after it, which status says.
    const waiting = gated && mirror instanceof FileBackend
      ? () => {
        const version = lowest();
        if (typeof version !== "number") return undefined;
        const kept = mirror.compactionSizes().sealedLogBytes -
          mirror.compactionSizes(version).sealedLogBytes;
        if (kept === 0) return undefined;
        return `an async copy may resume from version ${version}: the primary keeps the ` +
          `${kept} bytes of sealed logs after it until it catches up`;
      }
      : undefined;
    result.push({ url: mirror.url, async: false, service, held, waiting });
  }
  for (const copy of copies) {
    const place = scratch();
    const service = new AsyncCopyCompaction(copy, (dest) => serviceOf(dest, policy, place, remote));
    result.push({ url: copy.url, async: true, service });
  }
  return result;
}
