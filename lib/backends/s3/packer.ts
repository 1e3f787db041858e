/**
 * The packer: in the background of an S3 backup's writer, it merges old change objects into
 * one pack (a log segment, keys.ts), so a node's millions of changes do not stay millions
 * of objects. Each step is crash-safe, because readers prefer a pack to the change objects
 * it holds and ignore superseded ones:
 *
 * 0. list the backup, which must still hold every record the writer stored (backend.ts);
 * 1. read the oldest change objects (never the newest, which a rewind may supersede), and
 *    check each record;
 * 2. store the pack under a new name, `If-None-Match: *`;
 * 3. read it back and compare it byte for byte with what was sent;
 * 4. only then delete the change objects it holds, and the objects nothing reads any more.
 *
 * In an encrypted backup step 1 also opens each record, which is sealed again where it lands
 * in the pack (its associated data names its object, object_cipher.ts).
 *
 * A crash before 2 leaves the change objects; between 2 and 4, a pack and its change
 * objects, which the next packer deletes once it read the pack and found it holds them (a
 * pack's name says what it should hold, not what S3 kept of it). A pack that reads back
 * other bytes at 3 is deleted. The node's writes never wait for it; its failures are logged
 * and retried at the next pack, but for a change object that fails its checks: the backup
 * no longer restores the node, so it takes no more changes.
 *
 * @module
 */
import {
  decodeRecordHeader,
  frameRecord,
  headerFields,
  payloadChecks,
  RECORD_HEADER_SIZE,
  type RecordCipher,
  RecordKind,
} from "../../format/record.ts";
import {
  CorruptBackupError,
  encodeSegmentHeader,
  SEGMENT_HEADER_SIZE,
  SegmentKind,
} from "../../format/segment.ts";
import { type DataKey, sameBytes } from "../../crypto/data_key.ts";
import { changePlace, objectCipher, ObjectKind, openSealed } from "./object_cipher.ts";
import type { S3Entry } from "./keys.ts";
import { packKey } from "./keys.ts";
import type { ChangeEntry, CoveredChanges, PackEntry, RecordSource } from "./layout.ts";
import { putNew, type S3Backend } from "./backend.ts";
import { retrying } from "./retry.ts";
import { concat } from "../../bytes/concat.ts";
import { S3Error } from "./client.ts";

/** When an S3 backup packs its change objects together, and how large a pack grows. */
export interface PackerOptions {
  /** Packs once more than this many change objects wait (the newest one is never packed). */
  every?: number;
  /** A pack holds at most about this many bytes. */
  maxBytes?: number;
}

const DEFAULT_EVERY = 1000;
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/** Whether a change object's bytes are a whole change record of the version its key names. */
function changeObjectChecks(entry: ChangeEntry, bytes: Uint8Array): boolean {
  const header = decodeRecordHeader(bytes);
  return header !== undefined && header.kind === RecordKind.Change &&
    header.version === entry.version &&
    bytes.length === RECORD_HEADER_SIZE + header.storedLength &&
    payloadChecks(header, bytes.subarray(RECORD_HEADER_SIZE));
}

/** One change object's bytes, checked (see {@linkcode changeObjectChecks}). */
export function checkChangeObject(entry: ChangeEntry, bytes: Uint8Array): void {
  if (!changeObjectChecks(entry, bytes)) {
    throw new Error(
      `Cannot read backup: the change object "${entry.key}" fails its checks; the backup is ` +
        `damaged: restore from another copy, or init a new backup from the node's database`,
    );
  }
}

/**
 * A change object stored on a change object links to its generation (docs/FORMAT.md, "On
 * S3"): one that links to another generation of the record read before it (deleted, or
 * another writer's) would restore a mix of two histories. A link of `0` (an older backup's)
 * says nothing; on a pack or base the link is not checked (the writer may have seen the
 * record below as a change object, then a pack took it).
 */
export function checkLink(
  change: ChangeEntry,
  bytes: Uint8Array,
  below: RecordSource | undefined,
): void {
  const link = decodeRecordHeader(bytes)!.link;
  if (link === 0 || below?.kind !== "change" || below.gen === link - 1) return;
  throw new CorruptBackupError(
    change.key,
    undefined,
    `record ${below.seq} lacks generation ${link - 1} (only generation ${below.gen} is read), ` +
      `which the change after it was stored on,`,
  );
}

/**
 * Whether the encrypted pack `stored` holds the records of `sent`, the same pack sealed with
 * other nonces: record by record at the same offsets, the same header and opened payload.
 */
function sameSealedRecords(stored: Uint8Array, sent: Uint8Array, cipher: RecordCipher): boolean {
  const header = (bytes: Uint8Array) => bytes.subarray(0, SEGMENT_HEADER_SIZE);
  if (stored.length !== sent.length || !sameBytes(header(stored), header(sent))) return false;
  for (let offset = SEGMENT_HEADER_SIZE; offset < sent.length;) {
    const ours = decodeRecordHeader(sent.subarray(offset))!;
    const theirs = decodeRecordHeader(stored.subarray(offset));
    const fields = headerFields(ours);
    if (theirs === undefined || !sameBytes(headerFields(theirs), fields)) return false;
    const end = offset + RECORD_HEADER_SIZE + ours.storedLength;
    const open = (bytes: Uint8Array) =>
      cipher.open(fields, offset, bytes.subarray(offset + RECORD_HEADER_SIZE, end));
    const opened = open(stored);
    if (opened === undefined || !sameBytes(opened, open(sent)!)) return false;
    offset = end;
  }
  return true;
}

/**
 * Whether `bytes`, the pack `pack`, holds `changes` (change objects of its records, by
 * sequence number) as a packer stores them: its header as a packer writes it, then record
 * by record each change object's bytes, or in an encrypted backup its header's fields and
 * opened payload. A change object the pack's own sound record differs from is another
 * generation of that record (a rewind's dropped one, a copy's), which the listing alone
 * cannot tell, unless the change after it links to it (docs/FORMAT.md, "On S3").
 */
export function holdsChanges(
  pack: PackEntry,
  bytes: Uint8Array,
  changes: ReadonlyMap<number, { entry: ChangeEntry; bytes: Uint8Array }>,
  backupId: Uint8Array,
  key: DataKey | undefined,
): boolean {
  const header = encodeSegmentHeader({
    kind: SegmentKind.Log,
    number: pack.first,
    backupId,
    firstLog: 0,
    keyId: key?.id,
  });
  if (!sameBytes(bytes.subarray(0, SEGMENT_HEADER_SIZE), header)) return false;
  const place = { backupId, kind: ObjectKind.Pack, first: pack.first, second: pack.last };
  const cipher = key && objectCipher(key, place);
  /** Links of the pack's records, by sequence number (a plain pack keeps them). */
  const links = new Map<number, number>();
  const differing: ChangeEntry[] = [];
  let seq = pack.first;
  for (let offset = SEGMENT_HEADER_SIZE; offset < bytes.length; seq++) {
    const record = decodeRecordHeader(bytes.subarray(offset));
    const end = offset + RECORD_HEADER_SIZE + (record?.storedLength ?? 0);
    if (record === undefined || end > bytes.length) return false;
    const stored = bytes.subarray(offset + RECORD_HEADER_SIZE, end);
    const fields = headerFields(record);
    const opened = cipher ? cipher.open(fields, offset, stored) : stored;
    if (!payloadChecks(record, stored) || opened === undefined) return false;
    links.set(seq, record.link);
    const change = changes.get(seq);
    if (change && !cipher && !sameBytes(bytes.subarray(offset, end), change.bytes)) {
      differing.push(change.entry);
    }
    if (change && cipher) {
      const own = decodeRecordHeader(change.bytes);
      const ownCipher = own && objectCipher(key!, changePlace(backupId, change.entry, own.link));
      const theirs = ownCipher?.open(fields, 0, change.bytes.subarray(RECORD_HEADER_SIZE));
      const same = own !== undefined && sameBytes(headerFields(own), fields);
      if (!same || theirs === undefined || !sameBytes(opened, theirs)) differing.push(change.entry);
    }
    offset = end;
  }
  // The generation of a record the history follows, as the change after it links to it.
  const followed = (change: ChangeEntry) => {
    const after = changes.get(change.seq + 1);
    const link = (after && decodeRecordHeader(after.bytes)?.link) || links.get(change.seq + 1);
    return link ? link - 1 : undefined;
  };
  return seq === pack.last + 1 && differing.every((c) => followed(c) !== c.gen);
}

export class Packer {
  readonly #every: number;
  readonly #maxBytes: number;
  #running: Promise<void> | undefined;
  #stopped = false;
  /** Set while a compaction may delete the change objects a pack would read. */
  #paused = false;
  /** Packs stored since the writer opened the backup. */
  packs = 0;

  constructor(
    readonly backend: S3Backend,
    readonly backupId: Uint8Array,
    /** Objects nothing reads any more, to delete at the next pack. */
    readonly garbage: S3Entry[],
    /** Change objects packs hold by their names: garbage once each pack is checked. */
    readonly covered: CoveredChanges[],
    options: PackerOptions = {},
  ) {
    this.#every = options.every ?? DEFAULT_EVERY;
    this.#maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** A change object superseded by a rewind's: deleted at the next pack. */
  discard(entry: S3Entry): void {
    this.garbage.push(entry);
  }

  /** Starts a pack when enough change objects wait and none is under way. */
  maybePack(_lastSeq: number): void {
    if (this.#running || this.#stopped || this.#paused || this.backend.failure) return;
    if (this.backend.unpacked.length <= this.#every) return;
    this.#running = this.#pack().catch(async (error) => {
      this.backend.log(
        "unusual",
        `packing change objects failed, to retry later: ${error.message}`,
      );
      // A change object gone: a compaction deleted it (its base covers it).
      if (error instanceof S3Error && error.code === "NoSuchKey") {
        await this.backend.resync().catch(() => {});
      }
    }).finally(() => this.#running = undefined);
  }

  async settle(): Promise<void> {
    await this.#running;
  }

  /** Starts no pack until {@linkcode resume}; resolves once the one under way is done. */
  async pause(): Promise<void> {
    this.#paused = true;
    await this.#running;
  }

  resume(): void {
    this.#paused = false;
  }

  stop(): void {
    this.#stopped = true;
  }

  async #pack(): Promise<void> {
    const { client, policy, log } = this.backend;
    // Never the newest change object: a rewind may still supersede it. Taken before the
    // listing, so a pack's records do not depend on how long the listing took.
    const waiting = this.backend.unpacked.slice(0, -1);
    // A listing every pack: objects deleted behind the writer's back are found within one
    // pack's changes (the backend then refuses the next change), not at a restore.
    await retrying("listing the backup", policy, log, () => this.backend.resync());
    if (this.backend.failure) return;
    const batch: ChangeEntry[] = [];
    const records: Uint8Array[] = [];
    let bytes = SEGMENT_HEADER_SIZE;
    for (const entry of waiting) {
      if (this.#stopped) return;
      if (batch.length > 0 && bytes + entry.size > this.#maxBytes) break;
      const record = await retrying(
        `reading ${entry.key}`,
        policy,
        log,
        () => client.get(entry.key, entry.size, entry.size),
      );
      if (!changeObjectChecks(entry, record)) {
        // Stored whole by this writer: a backup that no longer restores stops the node.
        return this.backend.damaged(`the change object "${entry.key}" fails its checks`);
      }
      // Packed, a change over a generation its link does not name could no longer be told.
      checkLink(entry, record, batch.at(-1));
      batch.push(entry);
      records.push(record);
      bytes += record.length;
    }
    const dataKey = this.backend.options.key;
    const first = batch[0].seq;
    const last = batch.at(-1)!;
    const cipher = dataKey && objectCipher(dataKey, {
      backupId: this.backupId,
      kind: ObjectKind.Pack,
      first,
      second: last.seq,
    });
    const parts = [
      encodeSegmentHeader({
        kind: SegmentKind.Log,
        number: first,
        backupId: this.backupId,
        firstLog: 0,
        keyId: dataKey?.id,
      }),
      ...(dataKey ? this.#reseal(dataKey, cipher!, batch, records) : records),
    ];
    const pack = concat(parts);
    const key = packKey(client.url.prefix, first, last.seq, last.version);
    // An encrypted pack is sealed anew at each try: one an earlier try stored (its read-back
    // failed) differs in its nonces, and is taken if it holds the same records.
    let conflict: S3Error | undefined;
    try {
      await putNew(client, key, pack, `pack of records ${first}-${last.seq}`, policy, log);
    } catch (error) {
      if (!(cipher && error instanceof S3Error && error.status === 412)) throw error;
      conflict = error;
    }
    // A large pack went out slowly, and it comes back no faster.
    const stored = await retrying(
      `reading ${key} back`,
      policy,
      log,
      () => client.get(key, pack.length),
    );
    if (!sameBytes(stored, pack) && !(cipher && sameSealedRecords(stored, pack, cipher))) {
      // Readers would take the pack this try stored over the change objects it should hold.
      if (!conflict) {
        await retrying(`deleting ${key}`, policy, log, () => client.delete(key)).catch(() => {});
      }
      throw conflict ?? new Error(
        `the pack "${key}" reads back other bytes than were sent; keeping the changes`,
      );
    }
    this.packs++;
    // From here readers take the pack; the change objects are garbage.
    const unpacked = this.backend.unpacked;
    unpacked.splice(0, unpacked.findIndex((e) => e.seq === last.seq) + 1);
    this.garbage.push(...batch);
    await this.#collect();
  }

  /**
   * Reads a pack stored before this writer started, and the change objects of its records
   * still there: they become garbage only if it holds them. One that does not stops the
   * backup, naming it: readers take it over them. A pack or change object gone meanwhile (a
   * compaction's base covers it) needs no check.
   */
  async #checkCovered({ pack, changes }: CoveredChanges): Promise<void> {
    const { client, policy, log } = this.backend;
    const read = (key: string, size: number) =>
      retrying(`reading ${key}`, policy, log, () => client.get(key, size, size)).catch((error) => {
        if (error instanceof S3Error && error.code === "NoSuchKey") return undefined;
        throw error;
      });
    const bytes = await read(pack.key, pack.size);
    if (bytes === undefined) return;
    const held = new Map<number, { entry: ChangeEntry; bytes: Uint8Array }>();
    for (const entry of changes) {
      const record = await read(entry.key, entry.size);
      if (record !== undefined) held.set(entry.seq, { entry, bytes: record });
    }
    if (held.size === 0) return;
    if (!holdsChanges(pack, bytes, held, this.backupId, this.backend.options.key)) {
      return this.backend.damaged(
        `the pack "${pack.key}" does not hold the change objects it names (S3 changed its ` +
          `bytes, or something else stored it); they are kept`,
        "delete that pack (they hold its records), then start the node again",
      );
    }
    this.garbage.push(...held.values().map((c) => c.entry));
  }

  /**
   * An encrypted backup's records, opened from their change objects and sealed again where
   * they land in the pack (the packer runs in the plugin, where the key is): a sealed
   * record's associated data names its object (object_cipher.ts).
   */
  #reseal(
    key: DataKey,
    cipher: RecordCipher,
    batch: ChangeEntry[],
    records: Uint8Array[],
  ): Uint8Array[] {
    const { backupId } = this;
    let offset = SEGMENT_HEADER_SIZE;
    return batch.map((entry, i) => {
      const header = decodeRecordHeader(records[i])!;
      const own = objectCipher(key, changePlace(backupId, entry, header.link));
      const stored = records[i].subarray(RECORD_HEADER_SIZE);
      const payload = openSealed(header, stored, own, 0, entry.key);
      const sealed = frameRecord(header.kind, header.version, payload, { cipher, offset });
      offset += sealed.length;
      return sealed;
    });
  }

  /** Deletes the objects nothing reads; the ones that fail stay for the next time. */
  async #collect(): Promise<void> {
    const { client, policy, log } = this.backend;
    for (const held of this.covered.splice(0)) {
      try {
        await this.#checkCovered(held);
      } catch {
        this.covered.push(held);
      }
    }
    const doomed = this.garbage.splice(0);
    for (const entry of doomed) {
      if (this.#stopped) {
        this.garbage.push(entry);
        continue;
      }
      try {
        await retrying(`deleting ${entry.key}`, policy, log, () => client.delete(entry.key));
      } catch {
        this.garbage.push(entry);
      }
    }
  }
}
