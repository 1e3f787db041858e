/**
 * Whose node a backup is. Copies of one node's backup (mirror_urls, async_urls) each carry a
 * backup id of their own, so the format cannot tell them from another node's backup; the
 * database can: lightningd keeps its node id (the public key of its hsm_secret) in
 * `vars.node_id`, and refuses to start on a database holding another. And where each copy
 * ends: copies at one version may still hold different last changes (an async copy keeps one
 * the node never committed), which restore compares too.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import type { BackupReader } from "../backends/backend.ts";
import { writeAll } from "../fs/durable.ts";
import { removeIfExists } from "../fs/exists.ts";
import { checkInterrupted } from "../fs/interrupt.ts";
import { claimWorkPath } from "../fs/work_path.ts";
import { isPragmaOnly } from "../sqlite/apply.ts";

/** The statement lightningd sets its node id with at its first start, as `db_write` has it. */
const NODE_ID_STATEMENT =
  /^\s*INSERT\s+INTO\s+vars\s*\(\s*name\s*,\s*blobval\s*\)\s*VALUES\s*\(\s*'node_id'\s*,\s*x'([0-9a-f]+)'/i;

/** What restore compares between copies of a backup: whose node, and where each ends. */
export interface CopyFacts {
  /** The node id, in lowercase hex; `undefined` when the copy holds none. */
  nodeId: string | undefined;
  /**
   * The last change that is not only PRAGMAs, its version and statements as JSON; `undefined`
   * when the copy ends with a snapshot (a copy made from the database and not written to
   * since). A migration's PRAGMA hook repeats its version and changes no data: a copy that
   * lacks one at its end holds the same state.
   */
  lastChange: string | undefined;
}

/**
 * The node id of the node whose backup `reader` reads, and its last change. The node id is
 * read from its newest snapshot, written to `work` (a work path beside the restore's target,
 * removed before return) and opened there, else from the first change after it that sets
 * one. The changes are read to the end but not applied; Ctrl-C stops the reading.
 */
export function copyFacts(reader: BackupReader, work: string): CopyFacts {
  let snapshot: Deno.FsFile | undefined;
  let nodeId: string | undefined;
  let last: { version: number; statements: readonly string[] } | undefined;
  try {
    for (const entry of reader.entries()) {
      checkInterrupted();
      if (entry.kind === "snapshot-part") {
        snapshot ??= claimWorkPath(work, "file");
        writeAll(snapshot, entry.bytes);
      } else if (entry.kind === "snapshot-end") {
        snapshot?.close();
        snapshot = undefined;
        nodeId = snapshotNodeId(work);
        removeIfExists(work);
        last = undefined;
      } else if (entry.kind === "change") {
        if (!isPragmaOnly(entry.statements)) last = entry;
        for (const statement of nodeId === undefined ? entry.statements : []) {
          const id = NODE_ID_STATEMENT.exec(statement)?.[1];
          if (id !== undefined) nodeId = id.toLowerCase();
        }
      }
    }
    return { nodeId, lastChange: last && JSON.stringify([last.version, last.statements]) };
  } finally {
    snapshot?.close();
    removeIfExists(work);
  }
}

function snapshotNodeId(path: string): string | undefined {
  // Read-write: a read-only connection leaves the -wal and -shm a snapshot in WAL mode gets
  // behind; this one removes them as it closes.
  const db = new DatabaseSync(path);
  try {
    const row = db.prepare("SELECT hex(blobval) AS id FROM vars WHERE name = 'node_id'").get();
    return row?.id ? String(row.id).toLowerCase() : undefined;
  } catch {
    return undefined; // No vars table: not a database lightningd wrote.
  } finally {
    db.close();
  }
}

/** A copy of a backup and the node id it holds (`undefined`: none). */
export interface CopyNode {
  url: string;
  nodeId: string | undefined;
}

/**
 * Refuses copies at the same newest version whose last changes differ, unless `accept`: one
 * holds a change the node never committed (an async copy keeps its last change until it is
 * reached again, while the node went on with another), or was altered, and a restore of the
 * wrong one is not the node's state. Copies that end with a snapshot are not compared, but do
 * not hide two others that differ. Returns the first that differs, which the Danger line of
 * the restore (of `copies[0]`) names.
 */
export function refuseDiverged(
  copies: readonly (CopyFacts & { url: string; version: number })[],
  accept: boolean,
): string | undefined {
  const ending = copies.filter((c) =>
    c.version === copies[0].version && c.lastChange !== undefined
  );
  const other = ending.find((c) => c.lastChange !== ending[0].lastChange);
  if (other === undefined || accept) return other?.url;
  const { url, version } = ending[0];
  throw new Error(
    `Cannot restore backup: ${url} and ${other.url} are both at version ${version}, but ` +
      `their changes ${version} differ: one of them holds a change the node never committed ` +
      `(an async copy keeps its last change until it is reached again), or was altered, and ` +
      `restore cannot tell which the node has; give the synchronous copy (backup.lock's ` +
      `backend_url or one of its mirror_urls) first and add --accept-older to restore it`,
  );
}

/**
 * Refuses copies that are not all of one node: a restore of the newest would hand back
 * another node's database (a second node's backup given by mistake, an old node's). A copy
 * that holds no node id cannot be told the same node's, so it is refused too. `copies` are
 * those that hold something (an empty one restores nothing).
 */
export function refuseOtherNodes(copies: readonly CopyNode[]): void {
  const what = "restore from this node's backup alone, without --also";
  const known = copies.filter((c) => c.nodeId !== undefined);
  const other = known.find((c) => c.nodeId !== known[0].nodeId);
  if (other !== undefined) {
    throw new Error(
      `Cannot restore backup: ${known[0].url} and ${other.url} are backups of different ` +
        `nodes (node ids ${known[0].nodeId} and ${other.nodeId}): ${what}`,
    );
  }
  const none = copies.find((c) => c.nodeId === undefined);
  const compared = copies.find((c) => c !== none);
  if (none === undefined || compared === undefined) return;
  throw new Error(
    `Cannot restore backup: ${none.url} holds no node id (lightningd's vars.node_id), so it ` +
      `cannot be told a copy of the same node's backup as ${compared.url}: ${what}`,
  );
}
