/**
 * Where a compaction's new base continues, and which segments it makes redundant (and so may
 * delete once the base is durable), by the chain rules of lib/format/chain.ts: a base names
 * the log its changes continue in, and the chain starts at the log the oldest base names.
 *
 * @module
 */
import {
  type Chain,
  type ChainScanOptions,
  scanLogs,
  sealedVersion,
  type Segment,
} from "../format/chain.ts";
import { readLayout } from "../format/layout.ts";
import { decodeStatements } from "../format/record.ts";
import { isPragmaOnly } from "../sqlite/apply.ts";

/** How many bases to keep (each with the logs after it), for point-in-time restores. */
export const DEFAULT_RETAIN_BASES = 1;

/**
 * The log a base at `version` continues in: the first that holds a change above `version`,
 * or a hook without a bump at `version` (a migration's PRAGMA, which must still run after the
 * base, before the change that rebuilds a table). Logs before it hold only what the base
 * holds; the live log, unsealed, may hold anything. `scan` opens an encrypted backup's records
 * (its key's), as that hook must be read.
 */
export function continuingLog(
  chain: Chain,
  version: number,
  scan: ChainScanOptions = { decode: true },
): number {
  for (const log of chain.logs) {
    const last = sealedVersion(log);
    if (last === undefined || last > version) return log.number;
    if (last === version && holdsPragmaHookAt(chain, log, version, scan)) return log.number;
  }
  throw new Error(`Cannot compact backup: "${chain.dir}" has no log`);
}

/**
 * The log a base at `version` may continue in, from the seals' headers alone (a backup whose
 * records cannot be opened here: an encrypted one on its server): the first whose seal is at
 * or above `version`. Readers skip what a base holds, so starting a log early is safe; it
 * only keeps a log that {@linkcode continuingLog} may let go.
 */
export function continuingLogByVersion(chain: Chain, version: number): number {
  for (const log of chain.logs) {
    const last = sealedVersion(log);
    if (last === undefined || last >= version) return log.number;
  }
  throw new Error(`Cannot compact backup: "${chain.dir}" has no log`);
}

/** Whether `log` holds a hook without a bump at `version` (read only when it ends there). */
function holdsPragmaHookAt(
  chain: Chain,
  log: Segment,
  version: number,
  scan: ChainScanOptions,
): boolean {
  for (const record of scanLogs(chain, log.number, scan)) {
    if (record.log.number !== log.number) return false;
    if (
      record.header.version === version &&
      isPragmaOnly(decodeStatements(record.payload!, true))
    ) return true;
  }
  return false;
}

/**
 * The bases older than the newest `retain`, and the logs before the one the oldest kept base
 * continues in (also those a crash left below the chain's start), oldest first.
 */
export function redundantSegments(chain: Chain, retain: number): string[] {
  if (chain.bases.length === 0) return [];
  const kept = chain.bases.slice(-Math.max(1, retain));
  const start = kept[0].header.firstLog;
  const bases = chain.bases.slice(0, chain.bases.length - kept.length).map((b) => b.path);
  const logs = readLayout(chain.dir).logs.filter((l) => l.sequence < start).map((l) => l.path);
  return [...bases, ...logs];
}
