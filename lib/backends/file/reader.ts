/**
 * The file backend's reader: streams a backup directory for restore and describes it.
 *
 * @module
 */
import type { BackupDescription, BackupEntry, BackupReader } from "../backend.ts";
import { decodeSnapshotEnd, decodeStatements, RecordKind } from "../../format/record.ts";
import {
  CorruptBackupError,
  scanNamedSegment,
  SegmentKind,
  type SegmentRecord,
  type SegmentTail,
} from "../../format/segment.ts";
import { readLayout } from "../../format/layout.ts";
import { firstVersion } from "../../format/log_start.ts";
import { isPragmaOnly } from "../../sqlite/apply.ts";

/** Reads one segment's records; a torn tail is allowed only where `tornAllowed`. */
function* segmentRecords(
  path: string,
  kind: SegmentKind,
  number: number,
  tornAllowed: boolean,
  decode: boolean,
): Generator<SegmentRecord, SegmentTail, void> {
  const file = Deno.openSync(path, { read: true });
  try {
    return yield* scanNamedSegment(file, path, { kind, number }, { tornAllowed, decode });
  } finally {
    file.close();
  }
}

export class FileBackupReader implements BackupReader {
  constructor(readonly url: string, readonly dir: string) {}

  *entries(toVersion = Infinity): Iterable<BackupEntry> {
    const layout = readLayout(this.dir);
    const base = layout.bases.findLast((b) => b.version <= toVersion);
    const baseVersion = base?.version ?? 0;
    // Without a base, a restore starts from an empty database: the logs must start there too.
    const logsStart = layout.logs.length === 0 ? undefined : firstVersion(layout.logs[0].path);
    if (!base && layout.bases.length > 0 && (logsStart ?? Infinity) > 1) {
      throw new Error(
        `Cannot restore backup to version ${toVersion}: the oldest version it still holds is ` +
          `${layout.bases[0].version} (compaction folded the older ones into it)`,
      );
    }
    if (base) yield* this.#snapshot(base.path, base.version);
    for (const [i, log] of layout.logs.entries()) {
      const last = i === layout.logs.length - 1;
      for (
        const { offset, header, payload } of segmentRecords(
          log.path,
          SegmentKind.Log,
          log.sequence,
          last,
          true,
        )
      ) {
        if (header.kind !== RecordKind.Change) {
          throw new CorruptBackupError(log.path, offset, `unexpected record kind ${header.kind}`);
        }
        if (header.version < baseVersion) continue;
        const statements = decodeStatements(payload!, true);
        // The base holds every change up to its version; a hook without a bump at that
        // version (a migration's PRAGMA) came after it and must still run.
        if (header.version === baseVersion && !isPragmaOnly(statements)) continue;
        if (header.version > toVersion) return;
        yield { kind: "change", version: header.version, statements };
      }
    }
  }

  *#snapshot(path: string, version: number): Iterable<BackupEntry> {
    let totalBytes = 0;
    let parts = 0;
    for (
      const { offset, header, payload } of segmentRecords(
        path,
        SegmentKind.Base,
        version,
        false,
        true,
      )
    ) {
      if (header.version !== version) {
        throw new CorruptBackupError(path, offset, "snapshot record of another version");
      }
      if (header.kind === RecordKind.SnapshotPart) {
        totalBytes += payload!.length;
        parts++;
        yield { kind: "snapshot-part", version, bytes: payload! };
        continue;
      }
      const end = header.kind === RecordKind.SnapshotEnd ? decodeSnapshotEnd(payload!) : undefined;
      if (!end || end.totalBytes !== totalBytes || end.parts !== parts) {
        throw new CorruptBackupError(path, offset, "snapshot end does not match its parts");
      }
      yield { kind: "snapshot-end", version, totalBytes };
      return;
    }
    throw new CorruptBackupError(path, 0, "snapshot has no end record");
  }

  describe(): BackupDescription {
    const layout = readLayout(this.dir);
    let records = 0;
    let bytes = 0;
    let tornBytes = 0;
    let firstVersion: number | undefined = layout.bases[0]?.version;
    let lastVersion = layout.bases.at(-1)?.version ?? 0;
    for (const base of layout.bases) {
      const scan = segmentRecords(base.path, SegmentKind.Base, base.version, false, false);
      for (let step = scan.next(); !step.done; step = scan.next()) records++;
      bytes += Deno.statSync(base.path).size;
    }
    for (const [i, log] of layout.logs.entries()) {
      const scan = segmentRecords(
        log.path,
        SegmentKind.Log,
        log.sequence,
        i === layout.logs.length - 1,
        false,
      );
      let step = scan.next();
      for (; !step.done; step = scan.next()) {
        records++;
        firstVersion ??= step.value.header.version;
        lastVersion = Math.max(lastVersion, step.value.header.version);
      }
      tornBytes += step.value.tornBytes;
      bytes += Deno.statSync(log.path).size;
    }
    return {
      url: this.url,
      format: "cln-backup 2",
      snapshots: layout.bases.map((b) => b.version),
      firstVersion: firstVersion ?? 0,
      lastVersion,
      records,
      bytes,
      tornBytes,
    };
  }

  close(): void {}
}
