/**
 * A file backup as the plugin leaves it while it runs: a base, then sealed logs after it,
 * which its next compaction deletes; for reads that a compaction lands in.
 *
 * @module
 */
import type { Change } from "../../lib/backends/backend.ts";
import { createFileBackup } from "../../lib/backends/file/create.ts";
import { FileBackend } from "../../lib/backends/file/writer.ts";
import { compactWithWriter } from "../../lib/compact/compact.ts";

/**
 * The backup at `path` holding `changes`: the first half folded into a base, the rest in
 * small logs after it; `compact` runs the plugin's next compaction. Close `backend` after.
 */
export async function pluginBackup(
  path: string,
  changes: Change[],
): Promise<{ backend: FileBackend; compact: () => void }> {
  createFileBackup(path);
  const backend = FileBackend.open(`file://${path}`, path, { segmentBytes: 16 * 1024 });
  const compact = () => {
    compactWithWriter(backend, { target: backend.compactionTarget()!, retain: 1 });
  };
  const half = Math.floor(changes.length / 2);
  for (const change of changes.slice(0, half)) await backend.append(change);
  compact();
  for (const change of changes.slice(half)) await backend.append(change);
  return { backend, compact };
}
