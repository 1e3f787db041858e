/**
 * Where an S3 backup stands, from a listing (object names carry sequence numbers and
 * versions, see keys.ts): the newest base, then the objects holding every record after it,
 * without a gap; and what is left over (superseded, packed or covered objects) for the
 * packer to delete. The writer, the reader and the packer all read a backup through it.
 *
 * A record with several generations (a rewind's, or a second writer's) is read at the one
 * the change after it was stored on: each change object says which, in its record header's
 * link (`1 + generation`; `0` in older backups, whose highest generation is read). Only
 * those links are read from the objects, and only where a record has several generations.
 *
 * @module
 */
import { CorruptBackupError } from "../../format/segment.ts";
import { decodeRecordHeader, RECORD_HEADER_SIZE } from "../../format/record.ts";
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
  /** Objects nothing reads any more: lower generations, packs others hold, what the base covers. */
  garbage: S3Entry[];
  /**
   * The change objects still listed of the records a pack read here holds, by pack. Taken
   * by its name alone, a pack may hold other bytes (S3 changed them, or something else
   * stored it): they are garbage only once it is read and found to hold them (packer.ts).
   */
  covered: CoveredChanges[];
  /**
   * The newest record's other generations: nothing links to any generation of it yet, so
   * which one the history goes on from is not settled (a second writer's rewind may have
   * stored the one read). Neither read nor garbage until a change after it says.
   */
  unsettled: ChangeEntry[];
}

/** Change objects whose records a pack holds, by its name. */
export interface CoveredChanges {
  pack: PackEntry;
  changes: ChangeEntry[];
}

function lastSeqOf(source: RecordSource): number {
  return source.kind === "change" ? source.seq : source.last;
}

function firstSeqOf(source: RecordSource): number {
  return source.kind === "change" ? source.seq : source.first;
}

/**
 * Lists every backup object under the URL's prefix; the other keys there (`backup-id`,
 * `key.json`, other tools' objects) go to `others`. A listing that names an object twice is
 * refused (and tried again): taken as it is, the copy would be garbage, the object deleted.
 */
export async function listBackup(client: S3Client, others: string[] = []): Promise<S3Entry[]> {
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
      else others.push(key);
    }
  }
  return entries;
}

/**
 * By change object key, the generation of the record before it that it was stored on, from
 * its record's link; a change object that says none (an older backup's) is left out.
 */
export type Follows = ReadonlyMap<string, number>;

/**
 * The S3 backup's layout: a listing, and the links it needs read (see the module's note);
 * the listing's other keys go to `others`.
 */
export async function readLayout(client: S3Client, others?: string[]): Promise<S3Layout> {
  const entries = await listBackup(client, others);
  const follows = new Map<string, number>();
  const gens = new Map<number, number>();
  for (const e of entries) if (e.kind === "change") gens.set(e.seq, (gens.get(e.seq) ?? 0) + 1);
  for (const entry of entries) {
    if (entry.kind !== "change" || (gens.get(entry.seq - 1) ?? 0) < 2) continue;
    const link = await readLink(client, entry);
    if (link > 0) follows.set(entry.key, link - 1);
  }
  return resolveLayout(entries, follows);
}

/**
 * The link in a change object's record header. One a packer deleted since the listing says
 * none: its pack holds it and the record before it alike, so no generation is chosen.
 */
async function readLink(client: S3Client, entry: ChangeEntry): Promise<number> {
  let bytes: Uint8Array;
  try {
    bytes = await client.get(entry.key, entry.size, entry.size);
  } catch (error) {
    if (error instanceof S3Error && error.code === "NoSuchKey") return 0;
    throw error;
  }
  const header = decodeRecordHeader(bytes.subarray(0, RECORD_HEADER_SIZE));
  if (header === undefined) {
    throw new CorruptBackupError(entry.key, 0, "a change object whose record header fails its CRC");
  }
  return header.link;
}

/** Works out the layout of a listing; a gap, an overlap or a version jump is damage. */
export function resolveLayout(entries: readonly S3Entry[], follows: Follows = new Map()): S3Layout {
  const bases = entries.filter((e): e is BaseEntry => e.kind === "base")
    .sort((a, b) => a.seq - b.seq || a.version - b.version);
  const base = bases.at(-1);
  const baseSeq = base?.seq ?? 0;
  const garbage: S3Entry[] = [];
  const covered: CoveredChanges[] = [];
  const packs = entries.filter((e): e is PackEntry => e.kind === "pack")
    .sort((a, b) => a.first - b.first);
  const { chosen, missing, unsettled } = chainOfGenerations(entries, follows, garbage);
  const sources: RecordSource[] = [];
  let next = baseSeq + 1;
  let packAt = 0;
  const ordered = [...chosen.values()].sort((a, b) => a.seq - b.seq);
  let changeAt = 0;
  for (;;) {
    while (packAt < packs.length && packs[packAt].last < next) {
      garbage.push(packs[packAt++]);
    }
    while (changeAt < ordered.length && ordered[changeAt].seq < next) {
      // Past the base, what comes before `next` is held by the pack read last.
      const holder = sources.at(-1);
      if (holder?.kind !== "pack") garbage.push(ordered[changeAt++]);
      else if (covered.at(-1)?.pack === holder) covered.at(-1)!.changes.push(ordered[changeAt++]);
      else covered.push({ pack: holder, changes: [ordered[changeAt++]] });
    }
    // Of the packs holding record `next` (a packer's try that failed after its pack landed,
    // then a longer one; one that straddles a newer base, then one the packer stored after
    // it), the one reaching furthest is read; the others are garbage.
    let holding: PackEntry | undefined;
    let held = packAt;
    for (; held < packs.length && packs[held].first <= next; held++) {
      if (holding === undefined || packs[held].last > holding.last) holding = packs[held];
    }
    // A pack wins over the change objects it holds (deleted once it is found to hold them).
    const pack = packs[packAt];
    const change = ordered[changeAt];
    const source: RecordSource | undefined = holding ??
      (change !== undefined && change.seq === next ? change : undefined);
    if (source === undefined) {
      const follower = missing.get(next);
      if (follower !== undefined) {
        throw new CorruptBackupError(
          follower.key,
          undefined,
          `record ${next} lacks generation ${follows.get(follower.key)}, which the change ` +
            `after it was stored on,`,
        );
      }
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
    covered,
    unsettled,
  };
}

/**
 * The change object read for each sequence number: from the newest record down, the
 * generation the chosen change after it follows. A second writer on the prefix (a copy of
 * the node one change behind, which takes the newest change for its own rewound one) leaves
 * a generation that the history going on does not follow, so a restore never mixes the two.
 * The newest record, which nothing follows yet, and one under a change that says nothing,
 * are read at their highest generation, as a rewind leaves them. The rest are garbage;
 * `missing` has, by sequence number, the change whose predecessor's generation is not there.
 */
function chainOfGenerations(
  entries: readonly S3Entry[],
  follows: Follows,
  garbage: S3Entry[],
): {
  chosen: Map<number, ChangeEntry>;
  missing: Map<number, ChangeEntry>;
  unsettled: ChangeEntry[];
} {
  const bySeq = new Map<number, ChangeEntry[]>();
  for (const entry of entries) {
    if (entry.kind !== "change") continue;
    const generations = bySeq.get(entry.seq) ?? [];
    const twin = generations.find((g) => g.gen === entry.gen);
    if (twin !== undefined) {
      // Names differ only in their versions: two writers, each storing its own change.
      throw new CorruptBackupError(
        entry.key,
        undefined,
        `record ${entry.seq} stored twice at generation ${entry.gen} ("${twin.key}" too): ` +
          `two writers used this backup (a second node, or a copy of this one);`,
      );
    }
    generations.push(entry);
    bySeq.set(entry.seq, generations);
  }
  const chosen = new Map<number, ChangeEntry>();
  const missing = new Map<number, ChangeEntry>();
  let unsettled: ChangeEntry[] = [];
  const newest = Math.max(...bySeq.keys());
  for (const seq of [...bySeq.keys()].sort((a, b) => b - a)) {
    const generations = bySeq.get(seq)!;
    const successor = chosen.get(seq + 1);
    const gen = successor && follows.get(successor.key);
    const pick = gen === undefined
      ? generations.reduce((a, b) => b.gen > a.gen ? b : a)
      : generations.find((g) => g.gen === gen);
    if (pick === undefined) missing.set(seq, successor!);
    else chosen.set(seq, pick);
    const others = generations.filter((g) => g !== pick);
    // The newest record's other generations wait for a change after it: a copy of the node
    // one change behind may have stored the highest, which the node's next change does not
    // follow; deleted now, the node's own would be gone when its next change links to it.
    if (seq === newest) unsettled = others;
    else garbage.push(...others);
  }
  return { chosen, missing, unsettled };
}

/**
 * Versions named by the keys never go down, and go up by at most one a record: a change
 * object's by one, a pack's last by its record count. So records whose base is gone (a
 * lifecycle rule expires the oldest objects first) are refused, not read as if they began
 * an empty backup.
 */
function checkVersions(base: BaseEntry | undefined, sources: RecordSource[]): void {
  let version = base?.version ?? 0;
  for (const source of sources) {
    const first = firstSeqOf(source);
    const records = lastSeqOf(source) - first + 1;
    if (source.version < version || source.version > version + records) {
      const orphan = base === undefined && source === sources[0] ? ", and no base before it," : "";
      throw new CorruptBackupError(
        source.key,
        undefined,
        `version ${source.version} after version ${version} (record ${first})${orphan}`,
      );
    }
    version = source.version;
  }
}
