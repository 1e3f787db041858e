/**
 * What the tests of a copy's tie to its backup id (backup.lock's `backup_ids`) share: a node
 * whose plugin starts in this process, and where its async copy settles.
 *
 * @module
 */
import { assert } from "./assert.ts";
import { recordedChanges } from "./cli_testing.ts";
import type { AsyncDestinationStatus, Backend } from "../../lib/backends/backend.ts";
import { openAtStart } from "../../lib/plugin/startup.ts";

/** Node A's changes: its database is at their end, version 15. */
export const A_CHANGES = recordedChanges(["fresh-start", "restart"]);
/** The changes node A writes next. */
export const NEXT = recordedChanges(["activity"]).slice(0, 3);
/** How the plugin refuses a copy that holds another backup than backup.lock ties to it. */
export const UNTIED = /is backup [0-9a-f]{32}, not [0-9a-f]{32}, the one backup\.lock ties to it/;
/** How the plugin refuses a copy on a server that holds an empty backup, not the node's. */
export const NONE_ON_SERVER =
  /^the server holds no backup of this node any more, but an empty one \(backup [0-9a-f]{32}, version 0: asking its id makes one where there is none\), where backup\.lock ties this copy to backup [0-9a-f]{32} \("backup_ids"\): it was removed or moved away on the server, unless backup\.credential names another node now: put the backup back on the server in place of the empty one \(or this node's own backup\.credential beside backup\.lock\); or, that failing, with lightningd stopped, remove the URL from (async|mirror)_urls and make the copy anew from the node's database with "cln-backup mirror 'socket:[^']*' --lightning-dir '\/[^']+'( --async)?"$/;

/** Starts the plugin of the node at `dir` in this process, its log lines kept in `logs`. */
export async function startPlugin(dir: string, logs: string[] = []): Promise<Backend> {
  const startup = await openAtStart(dir, { remoteLog: (_level, line) => logs.push(line) });
  assert(!("error" in startup.backend), JSON.stringify(startup.backend));
  return startup.backend;
}

/** The first async copy's status once it has settled: failing, or caught up. */
export async function settledCopy(backend: Backend): Promise<AsyncDestinationStatus> {
  for (let tries = 0; tries < 400; tries++) {
    const copy = backend.state().asyncDestinations![0];
    if (copy.state === "failing" || (copy.state === "caught-up" && copy.lag_versions === 0)) {
      return copy;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return backend.state().asyncDestinations![0];
}
