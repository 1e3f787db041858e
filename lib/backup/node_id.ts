/**
 * Whose node a backup is. Copies of one node's backup (mirror_urls, async_urls) each carry a
 * backup id of their own, so the format cannot tell them from another node's backup; the
 * database can: lightningd keeps its node id (the public key of its hsm_secret) in
 * `vars.node_id`, and refuses to start on a database holding another.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import type { BackupReader } from "../backends/backend.ts";
import { writeAll } from "../fs/durable.ts";
import { removeIfExists } from "../fs/exists.ts";
import { claimWorkPath } from "../fs/work_path.ts";

/** The statement lightningd sets its node id with at its first start, as `db_write` has it. */
const NODE_ID_STATEMENT =
  /^\s*INSERT\s+INTO\s+vars\s*\(\s*name\s*,\s*blobval\s*\)\s*VALUES\s*\(\s*'node_id'\s*,\s*x'([0-9a-f]+)'/i;

/**
 * The node id of the node whose backup `reader` reads, in lowercase hex; `undefined` when
 * it holds none. Read from its newest snapshot, written to `work` (a work path beside the
 * restore's target, removed before return) and opened there, else from the first change
 * after it that sets one: the changes are not applied, and are read only as far as that.
 */
export function backupNodeId(reader: BackupReader, work: string): string | undefined {
  let snapshot: Deno.FsFile | undefined;
  try {
    for (const entry of reader.entries()) {
      if (entry.kind === "snapshot-part") {
        snapshot ??= claimWorkPath(work, "file");
        writeAll(snapshot, entry.bytes);
      } else if (entry.kind === "snapshot-end") {
        snapshot?.close();
        snapshot = undefined;
        const id = snapshotNodeId(work);
        if (id !== undefined) return id;
      } else if (entry.kind === "change") {
        for (const statement of entry.statements) {
          const id = NODE_ID_STATEMENT.exec(statement)?.[1];
          if (id !== undefined) return id.toLowerCase();
        }
      }
    }
    return undefined;
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
