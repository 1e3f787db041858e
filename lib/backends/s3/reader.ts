/**
 * Reading an S3 backup (restore, status, verify): its objects are fetched, one at a time and
 * a base as a stream, into a temporary cln-backup directory (docs/FORMAT.md): the newest
 * base, and one log holding every record after it. The file reader then reads that
 * directory by the same chain rules as any file backup, so nothing is trusted that a file
 * backup would refuse, and memory holds at most about 16 MiB of objects at once (a pack, or
 * up to 16 change objects fetched together).
 *
 * An encrypted backup's records are opened as they are fetched, each for the object it is in
 * (object_cipher.ts), and spooled plain; without the key they stay sealed, which is enough
 * to describe the backup.
 *
 * @module
 */
import type { BackupDescription, BackupEntry, BackupReader } from "../backend.ts";
import { FileBackupReader } from "../file/reader.ts";
import { baseName, logName } from "../../format/layout.ts";
import {
  CorruptBackupError,
  decodeSegmentHeader,
  encodeSegmentHeader,
  readAt,
  scanSegment,
  SEGMENT_HEADER_SIZE,
  type SegmentHeader,
  SegmentKind,
} from "../../format/segment.ts";
import { decodeRecordHeader, RECORD_HEADER_SIZE, type RecordCipher } from "../../format/record.ts";
import { type DataKey, sameBytes } from "../../crypto/data_key.ts";
import { checkObjectKey, readWrappedKey, type WrappedKeyObject } from "./key_object.ts";
import { changePlace, objectCipher, ObjectKind, unsealRecord } from "./object_cipher.ts";
import { writeAll } from "../../fs/durable.ts";
import { S3Client, type S3Credentials, S3Error } from "./client.ts";
import {
  type BaseEntry,
  type ChangeEntry,
  type PackEntry,
  readLayout,
  type S3Layout,
} from "./layout.ts";
import { readBackupId, s3Url } from "./backend.ts";
import { isStray } from "./keys.ts";
import { checkChangeObject, checkLink, holdsChanges } from "./packer.ts";
import { DEFAULT_S3_POLICY, retrying, type S3RetryPolicy } from "./retry.ts";
import { makeScratchDir, removeScratchDir } from "../../fs/scratch_dir.ts";
import { pause } from "../stopping.ts";

/** Change objects fetched at once while spooling, and the bytes they may hold together. */
const FETCH_AHEAD = 16;
const FETCH_AHEAD_BYTES = 16 * 1024 * 1024;
/**
 * A listing with a gap (a compaction between its pages), or a spool that met an object the
 * packer or a compaction deleted after the listing: list again, this many times.
 */
const RELISTS = 3;

export class S3BackupReader implements BackupReader {
  readonly #file: FileBackupReader;

  private constructor(
    readonly url: string,
    readonly tmp: string,
    readonly layout: S3Layout,
    /** An encrypted backup's `key.json`; `undefined` for a plain one. */
    readonly wrapped: WrappedKeyObject | undefined,
    /** Objects named like the backup's that are not (keys.ts, `isStray`): left alone. */
    readonly strays: string[],
  ) {
    this.#file = new FileBackupReader(url, tmp);
  }

  /**
   * Fetches the backup at `url` into a temporary directory (in `scratch` when given: the
   * plugin may write only there). An encrypted backup is opened with the key `unlock` gives
   * (every record authenticated on the way, and spooled plain); without `unlock` its records
   * stay sealed, which is enough to describe it (status).
   */
  static async fetch(
    url: string,
    credentials: S3Credentials,
    policy: S3RetryPolicy = DEFAULT_S3_POLICY,
    scratch?: string,
    unlock?: Unlock,
  ): Promise<S3BackupReader> {
    const client = new S3Client(s3Url(url), credentials, policy.timeoutMs);
    const tmp = makeScratchDir("s3", scratch);
    try {
      const opened = await retrying("reading the backup id", policy, () => {}, async () => {
        const id = await readBackupId(client, url);
        return { id, wrapped: await readWrappedKey(client) };
      });
      const key = opened.wrapped && await unlock?.(opened.wrapped, opened.id);
      checkObjectKey(url, opened.wrapped, key, false);
      const sealing = { key, keyId: opened.wrapped?.keyId };
      for (let attempt = 0;; attempt++) {
        let listed: { layout: S3Layout; others: string[] };
        try {
          listed = await retrying("listing the backup", policy, () => {}, async () => {
            const others: string[] = [];
            return { layout: await readLayout(client, others), others };
          });
        } catch (error) {
          // A compaction deleting between the listing's pages leaves a gap, as the writer
          // knows (backend.ts, resync): damage only if the next listings show it too.
          if (!(error instanceof CorruptBackupError) || attempt === RELISTS) throw error;
          await pause(policy.retryDelayMs);
          continue;
        }
        const { layout, others } = listed;
        try {
          await spool(client, layout, opened.id, sealing, tmp, policy);
          const strays = others.filter((key) => isStray(client.url.prefix, key));
          return new S3BackupReader(url, tmp, layout, opened.wrapped, strays);
        } catch (error) {
          const gone = error instanceof S3Error && error.code === "NoSuchKey";
          if (!gone || attempt === RELISTS) throw error;
          for (const entry of Deno.readDirSync(tmp)) Deno.removeSync(`${tmp}/${entry.name}`);
        }
      }
    } catch (error) {
      removeScratchDir(tmp);
      throw error;
    }
  }

  /**
   * Its snapshots are the newest base alone, the one spooled: an older one beside it (a
   * compaction stopped before its deletes) is covered garbage that no restore reads, and
   * verify, which reads every snapshot it is told of, would fail on it.
   */
  describe(): BackupDescription {
    return {
      ...this.#file.describe(),
      url: this.url,
      format: "cln-backup 3 on S3",
      bytes: this.layout.bytes,
      ...(this.wrapped ? { encrypted: true } : {}),
      ...(this.strays.length > 0 ? { strays: this.strays } : {}),
    };
  }

  /** The version of each record after the base, in sequence order (from their headers). */
  recordVersions(): number[] {
    const path = `${this.tmp}/${logName(1)}`;
    const file = Deno.openSync(path, { read: true });
    try {
      const versions: number[] = [];
      const scan = scanSegment(file, path, { decode: false });
      for (let step = scan.next(); !step.done; step = scan.next()) {
        versions.push(step.value.header.version);
      }
      return versions;
    } finally {
      file.close();
    }
  }

  entries(toVersion?: number): Iterable<BackupEntry> {
    return this.#file.entries(toVersion);
  }

  close(): void {
    removeScratchDir(this.tmp);
  }
}

/** Gives the data key of an encrypted backup, whose `key.json` is `wrapped`. */
export type Unlock = (wrapped: WrappedKeyObject, backupId: Uint8Array) => Promise<DataKey>;

/**
 * How an encrypted backup's objects are spooled: `keyId` (from key.json) is the one every
 * base and pack must name; with `key` every record is opened and spooled plain, without it
 * records stay sealed in segments that name `keyId`. Both `undefined`: a plain backup.
 */
interface Sealing {
  key: DataKey | undefined;
  keyId: Uint8Array | undefined;
}

/** The spool's segments name the key only when their records stay sealed. */
const spooledKeyId = (sealing: Sealing) => sealing.key ? undefined : sealing.keyId;

/** The newest base and every record after it, as a cln-backup directory at `dir`. */
async function spool(
  client: S3Client,
  layout: S3Layout,
  backupId: Uint8Array,
  sealing: Sealing,
  dir: string,
  policy: S3RetryPolicy,
): Promise<void> {
  const base = layout.bases.at(-1);
  if (base) {
    const path = `${dir}/${baseName(base.version)}`;
    await retrying(
      `reading ${base.key}`,
      policy,
      () => {},
      () => spoolBase(client, base, backupId, sealing, path, policy),
    );
  }
  const log = Deno.openSync(`${dir}/${logName(1)}`, { write: true, create: true });
  try {
    const keyId = spooledKeyId(sealing);
    writeAll(
      log,
      encodeSegmentHeader({ kind: SegmentKind.Log, number: 1, backupId, firstLog: 0, keyId }),
    );
    const after = base?.seq ?? 0;
    // Change objects are small: a few are fetched at once, and written in order.
    const sources = layout.sources;
    for (let at = 0; at < sources.length;) {
      const source = sources[at];
      if (source.kind === "pack") {
        const tmp = `${dir}/pack.tmp`;
        const covered = layout.covered.find((c) => c.pack === source)?.changes ?? [];
        await spoolPack(client, source, { backupId, sealing, after, covered }, log, tmp, policy);
        at++;
        continue;
      }
      let end = at + 1;
      let bytes = source.size;
      while (
        end < sources.length && end - at < FETCH_AHEAD && sources[end].kind === "change" &&
        bytes + sources[end].size <= FETCH_AHEAD_BYTES
      ) {
        bytes += sources[end++].size;
      }
      const batch = sources.slice(at, end) as ChangeEntry[];
      const fetched = await Promise.all(
        batch.map((change) =>
          retrying(
            `reading ${change.key}`,
            policy,
            () => {},
            () => client.get(change.key, change.size, change.size),
          )
        ),
      );
      batch.forEach((change, i) => {
        checkChangeObject(change, fetched[i]);
        // Opened first: a sealed change's link is bound to it, so a rewritten one fails there.
        const record = sealing.key
          ? unsealChange(change, fetched[i], backupId, sealing.key)
          : fetched[i];
        checkLink(change, fetched[i], sources[at + i - 1]);
        writeAll(log, record);
      });
      at = end;
    }
  } finally {
    log.close();
  }
}

/**
 * Streams a base into `path`, its header naming log 1 (the one log of the spool); with a
 * key, into a file beside it first, whose records are then opened into `path`.
 */
async function spoolBase(
  client: S3Client,
  base: BaseEntry,
  backupId: Uint8Array,
  sealing: Sealing,
  path: string,
  policy: S3RetryPolicy,
): Promise<void> {
  const streamed = sealing.key ? `${path}.sealed` : path;
  await streamBase(client, base, backupId, sealing.keyId, streamed, policy);
  if (!sealing.key) return;
  try {
    const place = { backupId, kind: ObjectKind.Base, first: base.version, second: base.seq };
    unsealSegment(streamed, base.key, objectCipher(sealing.key, place), path, (header) => header);
  } finally {
    Deno.removeSync(streamed);
  }
}

/** Streams a base into `path`, as it is but for its header's first log (1). */
async function streamBase(
  client: S3Client,
  base: BaseEntry,
  backupId: Uint8Array,
  keyId: Uint8Array | undefined,
  path: string,
  policy: S3RetryPolicy,
): Promise<void> {
  const out = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    // A base may be large: the stream's whole reading is bounded, by a minute a 100 MB.
    const timeoutMs = policy.timeoutMs + Math.ceil(base.size / 100e6) * 60_000;
    const stream = await client.getStream(base.key, timeoutMs);
    let head = new Uint8Array(0);
    let headerDone = false;
    for await (const chunk of cutsTransient(stream, base.key, client.where)) {
      if (headerDone) {
        writeAll(out, chunk);
        continue;
      }
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      head = joined;
      if (head.length < SEGMENT_HEADER_SIZE) continue;
      const header = decodeSegmentHeader(head, base.key);
      if (header.kind !== SegmentKind.Base || header.number !== base.version) {
        throw new CorruptBackupError(base.key, 0, "a base whose header names another version");
      }
      checkId(base.key, header.backupId, backupId);
      checkSealing(base.key, header.keyId, keyId);
      if (header.firstLog !== base.seq + 1) {
        throw new CorruptBackupError(base.key, 40, "a base whose header names another record");
      }
      writeAll(out, encodeSegmentHeader({ ...header, firstLog: 1 }));
      writeAll(out, head.subarray(SEGMENT_HEADER_SIZE));
      headerDone = true;
    }
    if (!headerDone) throw new CorruptBackupError(base.key, 0, "missing segment header");
  } finally {
    out.close();
  }
}

/** The stream's chunks; a connection lost on the way is a failure worth a retry. */
async function* cutsTransient(
  stream: ReadableStream<Uint8Array>,
  key: string,
  where: string,
): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of stream) yield chunk;
  } catch (error) {
    throw new S3Error(`Cannot read "${key}": ${(error as Error).message} (${where})`, 0, "", true);
  }
}

function checkId(key: string, found: Uint8Array, backupId: Uint8Array): void {
  if (!found.every((b, i) => b === backupId[i])) {
    throw new CorruptBackupError(key, 24, "an object of another backup (its id differs)");
  }
}

/** A base's or pack's header names the key the backup's key.json names, or none in a plain one. */
function checkSealing(key: string, found: Uint8Array | undefined, keyId: Uint8Array | undefined) {
  if (found === undefined && keyId === undefined) return;
  if (found === undefined || keyId === undefined) {
    const what = found === undefined
      ? "a plain object in an encrypted backup"
      : "an encrypted object in a plain backup";
    throw new CorruptBackupError(key, 48, what);
  }
  if (!sameBytes(found, keyId)) {
    throw new CorruptBackupError(key, 52, "an object sealed with another key than key.json names,");
  }
}

/** A change object's record, opened (it is sealed for its own name) and framed plain. */
function unsealChange(
  change: ChangeEntry,
  bytes: Uint8Array,
  backupId: Uint8Array,
  key: DataKey,
): Uint8Array {
  const header = decodeRecordHeader(bytes)!;
  const place = changePlace(backupId, change, header.link);
  const stored = bytes.subarray(RECORD_HEADER_SIZE);
  return unsealRecord(header, stored, objectCipher(key, place), 0, change.key);
}

/**
 * Writes into `path` the segment in the file `from` (the object `key`) with every record
 * opened by `cipher` and framed plain, under the header `header` makes of its own.
 */
function unsealSegment(
  from: string,
  key: string,
  cipher: RecordCipher,
  path: string,
  header: (own: SegmentHeader) => SegmentHeader,
): void {
  const input = Deno.openSync(from, { read: true });
  const out = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    const own = decodeSegmentHeader(readAt(input, 0, SEGMENT_HEADER_SIZE), key);
    writeAll(out, encodeSegmentHeader({ ...header(own), keyId: undefined }));
    const scan = scanSegment(input, key, { decode: false, sealed: true });
    for (let step = scan.next();; step = scan.next()) {
      if (step.done) {
        if (step.value.tornBytes > 0) {
          throw new CorruptBackupError(key, step.value.end, "an object that ends in a torn record");
        }
        return;
      }
      const { offset, header: record } = step.value;
      const stored = readAt(input, offset + RECORD_HEADER_SIZE, record.storedLength);
      writeAll(out, unsealRecord(record, stored, cipher, offset, key));
    }
  } finally {
    input.close();
    out.close();
  }
}

/**
 * Copies a pack's records after sequence `after` into `log`, checking every one (and, with
 * a key, opening it), and that it holds the change objects of its records still `covered`.
 */
async function spoolPack(
  client: S3Client,
  pack: PackEntry,
  into: { backupId: Uint8Array; sealing: Sealing; after: number; covered: ChangeEntry[] },
  log: Deno.FsFile,
  tmp: string,
  policy: S3RetryPolicy,
): Promise<void> {
  const { backupId, sealing, after, covered } = into;
  const read = (key: string, size: number) =>
    retrying(`reading ${key}`, policy, () => {}, () => client.get(key, size, size));
  const bytes = await read(pack.key, pack.size);
  // Beside its change objects (a packer stopped before it deleted them), a pack is taken
  // only if it holds them: its name says what it should hold, not what S3 kept of it or who
  // stored it. Sealed records are compared only with the key (`status` reads none).
  if (covered.length > 0 && (sealing.key || !sealing.keyId)) {
    const held = new Map<number, { entry: ChangeEntry; bytes: Uint8Array }>();
    for (const entry of covered) {
      held.set(entry.seq, { entry, bytes: await read(entry.key, entry.size) });
    }
    if (!holdsChanges(pack, bytes, held, backupId, sealing.key)) {
      throw new Error(
        `Cannot read backup: the pack "${pack.key}" does not hold the change objects of its ` +
          `records beside it (S3 changed its bytes, or something else stored it): delete that ` +
          `pack (they hold its records), then read the backup again`,
      );
    }
  }
  Deno.writeFileSync(tmp, bytes);
  const file = Deno.openSync(tmp, { read: true });
  try {
    const header = decodeSegmentHeader(bytes, pack.key);
    if (header.kind !== SegmentKind.Log || header.number !== pack.first) {
      throw new CorruptBackupError(pack.key, 0, "a pack whose header names another record");
    }
    checkId(pack.key, header.backupId, backupId);
    checkSealing(pack.key, header.keyId, sealing.keyId);
    const place = { backupId, kind: ObjectKind.Pack, first: pack.first, second: pack.last };
    const cipher = sealing.key && objectCipher(sealing.key, place);
    let seq = pack.first;
    let version: number | undefined;
    const sealed = sealing.keyId !== undefined;
    const scan = scanSegment(file, pack.key, { decode: false, sealed });
    for (let step = scan.next();; step = scan.next()) {
      if (step.done) {
        if (step.value.tornBytes > 0) {
          throw new CorruptBackupError(
            pack.key,
            step.value.end,
            "a pack that ends in a torn record",
          );
        }
        break;
      }
      const { offset, header: record } = step.value;
      if (seq > after) {
        const stored = readAt(file, offset, RECORD_HEADER_SIZE + record.storedLength);
        writeAll(
          log,
          cipher
            ? unsealRecord(record, stored.subarray(RECORD_HEADER_SIZE), cipher, offset, pack.key)
            : stored,
        );
      }
      version = record.version;
      seq++;
    }
    if (seq !== pack.last + 1 || version !== pack.version) {
      throw new CorruptBackupError(
        pack.key,
        undefined,
        "a pack whose records do not match its name,",
      );
    }
  } finally {
    file.close();
  }
}
