/**
 * Where an S3 backup stands, from a listing alone (object names carry sequence numbers and
 * versions, see keys.ts): the newest base, then the objects holding every record after it,
 * without a gap; and what is left over (superseded, packed or covered objects) for the
 * packer to delete. The writer, the reader and the packer all read a backup through it.
 *
 * @module
 */
import { CorruptBackupError } from "../../format/segment.ts";
import { type S3Client, S3Error } from "./client.ts";
import { parseKey, type S3Entry } from "./keys.ts";

export type BaseEntry = Extract<S3Entry, { kind: "base" }>;
export type ChangeEntry = Extract<S3Entry, { kind: "change" }>;
export type PackEntry = Extract<S3Entry, { kind: "pack" }>;
/** An object holding records: one change, or a pack. */
export type RecordSource = ChangeEntry | PackEntry;

export interface S3Layout {
  /** Bases, oldest first; the newest is where the records start. */
  bases: BaseEntry[];
  /** The objects holding the records after the newest base, in order and without a gap. */
  sources: RecordSource[];
  /** Sequence of the last record (the newest base's when none follows it; 0: empty). */
  lastSeq: number;
  /** Version of the last record or base. */
  version: number;
  /** Version before the last change, when that change is a change object on top of it. */
  rewindVersion: number | undefined;
  /** Records after the newest base. */
  records: number;
  /** Bytes of every object of the backup. */
  bytes: number;
  /** Objects nothing reads any more: lower generations, change objects a pack holds. */
  garbage: S3Entry[];
}

function lastSeqOf(source: RecordSource): number {
  return source.kind === "change" ? source.seq : source.last;
}

function firstSeqOf(source: RecordSource): number {
  return source.kind === "change" ? source.seq : source.first;
}

/**
 * Lists every backup object under the URL's prefix. A listing that names an object twice is
 * refused (and tried again): taken as it is, the copy would be garbage, the object deleted.
 */
export async function listBackup(client: S3Client): Promise<S3Entry[]> {
  const prefix = client.url.prefix;
  const entries: S3Entry[] = [];
  const seen = new Set<string>();
  for await (const page of client.list(prefix)) {
    for (const { key, size } of page) {
      if (seen.has(key)) {
        throw new S3Error(
          `Cannot list "${prefix}": the listing names "${key}" twice (${client.where}); a ` +
            `listing that repeats an object may also leave one out: check the S3 service`,
          200,
          "",
          true,
        );
      }
      seen.add(key);
      const entry = parseKey(prefix, key, size);
      if (entry) entries.push(entry);
    }
  }
  return entries;
}

/** Works out the layout of a listing; a gap, an overlap or a version jump is damage. */
export function resolveLayout(entries: readonly S3Entry[]): S3Layout {
  const bases = entries.filter((e): e is BaseEntry => e.kind === "base")
    .sort((a, b) => a.seq - b.seq || a.version - b.version);
  const base = bases.at(-1);
  const baseSeq = base?.seq ?? 0;
  const garbage: S3Entry[] = [];
  const packs = entries.filter((e): e is PackEntry => e.kind === "pack")
    .sort((a, b) => a.first - b.first);
  // The newest generation of each sequence number.
  const changes = new Map<number, ChangeEntry>();
  for (const entry of entries) {
    if (entry.kind !== "change") continue;
    const other = changes.get(entry.seq);
    if (other === undefined || other.gen < entry.gen) {
      if (other) garbage.push(other);
      changes.set(entry.seq, entry);
    } else {
      garbage.push(entry);
    }
  }
  const sources: RecordSource[] = [];
  let next = baseSeq + 1;
  let packAt = 0;
  const ordered = [...changes.values()].sort((a, b) => a.seq - b.seq);
  let changeAt = 0;
  for (;;) {
    while (packAt < packs.length && packs[packAt].last < next) {
      garbage.push(packs[packAt++]);
    }
    while (changeAt < ordered.length && ordered[changeAt].seq < next) {
      garbage.push(ordered[changeAt++]);
    }
    // Of the packs holding record `next` (a packer's try that failed after its pack landed,
    // then a longer one; one that straddles a newer base, then one the packer stored after
    // it), the one reaching furthest is read; the others are garbage.
    let holding: PackEntry | undefined;
    let held = packAt;
    for (; held < packs.length && packs[held].first <= next; held++) {
      if (holding === undefined || packs[held].last > holding.last) holding = packs[held];
    }
    // A pack wins over the change objects it holds (they are deleted after it is verified).
    const pack = packs[packAt];
    const change = ordered[changeAt];
    const source: RecordSource | undefined = holding ??
      (change !== undefined && change.seq === next ? change : undefined);
    if (source === undefined) {
      const after = pack !== undefined || change !== undefined;
      if (after) {
        const key = (pack && (!change || pack.first < change.seq) ? pack : change)!.key;
        throw new CorruptBackupError(
          key,
          undefined,
          `no object holds record ${next}, which comes before`,
        );
      }
      break;
    }
    if (source.kind === "pack") {
      garbage.push(...packs.slice(packAt, held).filter((p) => p !== source));
      packAt = held;
    } else {
      changeAt++;
    }
    sources.push(source);
    next = lastSeqOf(source) + 1;
  }
  checkVersions(base, sources);
  const lastSeq = next - 1;
  const last = sources.at(-1);
  const beforeLast = sources.at(-2);
  let rewindVersion: number | undefined;
  if (last?.kind === "change") {
    rewindVersion = beforeLast === undefined
      ? base?.version ?? 0
      : lastSeqOf(beforeLast) === last.seq - 1
      ? beforeLast.version
      : undefined;
  }
  return {
    bases,
    sources,
    lastSeq,
    version: last?.version ?? base?.version ?? 0,
    rewindVersion,
    records: lastSeq - baseSeq,
    bytes: entries.reduce((sum, e) => sum + e.size, 0),
    garbage,
  };
}

/** Versions named by the keys never go down, and a change object goes up by at most one. */
function checkVersions(base: BaseEntry | undefined, sources: RecordSource[]): void {
  let version = base?.version ?? 0;
  for (const source of sources) {
    const jump = source.kind === "change" && source.version > version + 1;
    if (source.version < version || jump) {
      throw new CorruptBackupError(
        source.key,
        undefined,
        `version ${source.version} after version ${version} (record ${firstSeqOf(source)})`,
      );
    }
    version = source.version;
  }
}
