/**
 * The `s3://` backend: each change is one object, written with `If-None-Match: *` so that no
 * object is ever overwritten, and acknowledged to lightningd only after S3 answered that it
 * stored it. A request that fails in a way that can pass is tried again, boundedly
 * (retry.ts); a retry that meets its own earlier write (412, same bytes) knows it landed.
 * Any other failure is final: every later change is refused, and the node stops.
 *
 * Objects cannot be truncated, so a rewind writes nothing: the next change goes to the same
 * sequence number with the next generation, which supersedes the dropped one (keys.ts). In
 * the background a {@linkcode Packer} merges old change objects into packs.
 *
 * @module
 */
import type { Backend, BackupState, Change, ConnectionStatus } from "../backend.ts";
import { encodeRecord, encodeStatements, linkRecord, RecordKind } from "../../format/record.ts";
import { S3Client, type S3Credentials, S3Error } from "./client.ts";
import { changeKey, idKey, isStray, wrappedKeyKey } from "./keys.ts";
import { type ChangeEntry, readLayout, type RecordSource } from "./layout.ts";
import { DEFAULT_S3_POLICY, retrying, type S3Log, type S3RetryPolicy } from "./retry.ts";
import { parseBackupUrl } from "../url.ts";
import type { S3Url } from "./s3_url.ts";
import { Packer, type PackerOptions } from "./packer.ts";
import { BACKUP_ID_SIZE, CorruptBackupError, formatBackupId } from "../../format/segment.ts";
import type { CompactionSizes } from "../../compact/policy.ts";
import { type DataKey, sameBytes } from "../../crypto/data_key.ts";
import { checkObjectKey, readWrappedKey } from "./key_object.ts";
import { changePlace, objectCipher } from "./object_cipher.ts";
import { pause } from "../stopping.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { cliCommand } from "../../fs/advised_command.ts";

/** Listings in a row that must lack an object before the backup is taken to have lost it. */
const LISTINGS = 3;

/** How an `s3://` backup is opened: its signing keys, patience, log and packing. */
export interface S3BackendOptions {
  /** The access keys its requests are signed with. */
  credentials: S3Credentials;
  /**
   * Reads the keys again (the plugin's keys' file), once S3 refused them: temporary keys
   * that expire, or keys rotated, are taken without a restart.
   */
  renewCredentials?: () => S3Credentials;
  /** How patient its requests are; the defaults unless given. */
  policy?: S3RetryPolicy;
  /** Where it says a request is tried again; nowhere unless given. */
  log?: S3Log;
  /** When its change objects are packed; the defaults unless given. */
  packer?: PackerOptions;
  /** An encrypted backup's data key (backup.key): it must be given for one, and only for one. */
  key?: DataKey;
  /** The plugin's lifetime (see stopping.ts): once it aborts, a change's retries end. */
  signal?: AbortSignal;
  /** The node's lightning dir, which the commands its advice names run on. */
  lightningDir?: string;
}

export function s3Url(url: string): S3Url {
  const parsed = parseBackupUrl(url);
  if (parsed.scheme !== "s3") throw new Error(`"${url}" is not an s3:// URL`);
  return parsed;
}

/** Reads `backup-id`, which `init` wrote: without it there is no backup at the URL. */
export async function readBackupId(client: S3Client, url: string): Promise<Uint8Array> {
  let id: Uint8Array;
  try {
    id = await client.get(idKey(client.url.prefix), BACKUP_ID_SIZE, BACKUP_ID_SIZE);
  } catch (error) {
    if (error instanceof S3Error && error.code === "NoSuchKey") {
      throw new Error(
        `Cannot open backup: no backup at "${url}" (no ${idKey(client.url.prefix)} in ` +
          `${client.where}): check the URL's bucket, prefix and endpoint; "${
            cliCommand("init")
          }" is ` +
          `for a node without a backup`,
      );
    }
    throw error;
  }
  if (id.length !== BACKUP_ID_SIZE) {
    throw new Error(`Cannot open backup: "${idKey(client.url.prefix)}" is not a backup id`);
  }
  return id;
}

/**
 * Stores `bytes` at `key` unless an object is there already, retrying as `policy` allows. A
 * 412 with the same bytes is an earlier try of ours whose answer was lost; with other bytes
 * it is another writer's, and refused.
 */
export async function putNew(
  client: S3Client,
  key: string,
  bytes: Uint8Array,
  what: string,
  policy: S3RetryPolicy,
  log: S3Log,
  signal?: AbortSignal,
): Promise<void> {
  await retrying(`storing ${what}`, policy, log, async () => {
    try {
      await client.put(key, bytes, { create: true });
    } catch (error) {
      if (!(error instanceof S3Error) || error.status !== 412) throw error;
      // A large change came slowly, and it goes back no faster.
      if (sameBytes(await client.get(key, bytes.length), bytes)) {
        log("info", `${what} was stored by an earlier try, whose answer was lost`);
        return;
      }
      throw new S3Error(
        `Cannot store ${what}: "${key}" exists with other contents (${client.where}): ` +
          `another writer uses this backup (a second node, or a copy of this one): stop both ` +
          `and check which one owns it`,
        412,
        error.code,
        false,
      );
    }
  }, { signal });
}

/** The generation a change stored on `source` follows: a change object's own, else 0. */
function generationOf(source: RecordSource | undefined): number {
  return source?.kind === "change" ? source.gen : 0;
}

export class S3Backend implements Backend {
  readonly client: S3Client;
  readonly destination: string;
  readonly #policy: S3RetryPolicy;
  readonly #log: S3Log;
  #ready: Promise<void> = Promise.resolve();
  #version = 0;
  #rewindVersion: number | undefined;
  #bytes = 0;
  /** Bytes of the newest base: what automatic compaction weighs the rest against. */
  #baseBytes = 0;
  /** Sequence of the last record the newest base covers. */
  #baseSeq = 0;
  /**
   * Where the next change goes: its sequence number, generation, and the generation of the
   * change object holding the record before it (0: that record is in a base or a pack).
   */
  #next = { seq: 1, gen: 0, follows: 0 };
  /** The change object holding the last record (none: it is in a base or a pack). */
  #last: ChangeEntry | undefined;
  /** What the last change object follows, for a rewind that stores another in its place. */
  #lastFollows = 0;
  /**
   * Other generations of the last record (a rewind's dropped one, or those the listing left
   * unsettled): garbage only once this writer's next record is stored linked past them; a
   * second writer whose change stored there first makes ours fail instead.
   */
  #superseded: ChangeEntry[] = [];
  /** Change objects after the last pack, in order: what the packer merges. */
  readonly unpacked: ChangeEntry[] = [];
  #failure: string | undefined;
  #status: ConnectionStatus;
  #backupId: Uint8Array = new Uint8Array(BACKUP_ID_SIZE);
  #packer: Packer | undefined;

  private constructor(readonly url: string, readonly options: S3BackendOptions) {
    const parsed = s3Url(url);
    this.#policy = options.policy ?? DEFAULT_S3_POLICY;
    this.#log = options.log ?? (() => {});
    this.client = new S3Client(
      parsed,
      options.credentials,
      this.#policy.timeoutMs,
      options.renewCredentials,
    );
    this.destination = this.client.where;
    this.#status = {
      destination: this.destination,
      state: "connecting",
      reconnects: 0,
      last_ack_ms: null,
    };
  }

  /**
   * Starts reading where the backup stands (a listing) and returns at once, so the plugin
   * answers `getmanifest` meanwhile; {@linkcode ready} tells when it knows.
   */
  static open(url: string, options: S3BackendOptions): S3Backend {
    const backend = new S3Backend(url, options);
    backend.#ready = backend.#load();
    backend.#ready.catch(() => {});
    return backend;
  }

  static async connect(url: string, options: S3BackendOptions): Promise<S3Backend> {
    const backend = S3Backend.open(url, options);
    await backend.ready();
    return backend;
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  /** Read with the backup, at {@linkcode ready}. */
  async backupIdHex(): Promise<string> {
    await this.#ready;
    return formatBackupId(this.#backupId);
  }

  async #load(): Promise<void> {
    try {
      await retrying("opening the backup", this.#policy, this.#log, async () => {
        this.#backupId = await readBackupId(this.client, this.url);
        checkObjectKey(this.url, await readWrappedKey(this.client), this.options.key);
        const layout = await readLayout(this.client);
        this.#version = layout.version;
        this.#rewindVersion = layout.rewindVersion;
        this.#bytes = layout.bytes;
        this.#baseBytes = layout.bases.at(-1)?.size ?? 0;
        this.#baseSeq = layout.bases.at(-1)?.seq ?? 0;
        const [last, below] = layout.sources.slice(-2).reverse();
        this.#last = last?.kind === "change" ? last : undefined;
        this.#next = { seq: layout.lastSeq + 1, gen: 0, follows: this.#last?.gen ?? 0 };
        // What the last change was stored on: the record below it, as the layout chose it.
        this.#lastFollows = generationOf(below);
        const trailing = layout.sources.slice(
          layout.sources.findLastIndex((s) => s.kind === "pack") + 1,
        ) as ChangeEntry[];
        this.unpacked.splice(0, this.unpacked.length, ...trailing);
        this.#superseded = [...layout.unsettled];
        const { garbage, covered } = layout;
        this.#packer = new Packer(this, this.#backupId, garbage, covered, this.options.packer);
      }, { signal: this.options.signal });
      this.#status.state = "connected";
    } catch (error) {
      this.#status.state = "failed";
      this.#failure = (error as Error).message;
      throw error;
    }
  }

  get policy(): S3RetryPolicy {
    return this.#policy;
  }

  get log(): S3Log {
    return this.#log;
  }

  state(): BackupState {
    return {
      version: this.#version,
      rewindVersion: this.#rewindVersion,
      // Every sequence number after the newest base holds one record.
      records: this.#next.seq - 1 - this.#baseSeq,
      bytes: this.#bytes,
      tail: undefined,
      connection: { ...this.#status },
      ...(this.#failure !== undefined ? { failure: this.#failure } : {}),
      ...(this.options.key ? { encrypted: true } : {}),
    };
  }

  async append(change: Change): Promise<void> {
    if (this.#failure !== undefined) throw new Error(this.#failure);
    const { seq, gen, follows } = this.#next;
    const key = this.options.key;
    const place = changePlace(this.#backupId, this.#next, follows + 1);
    const record = encodeRecord(
      RecordKind.Change,
      change.version,
      encodeStatements(change.statements),
      key && { cipher: objectCipher(key, place), offset: 0 },
    );
    linkRecord(record, follows + 1);
    const name = changeKey(this.client.url.prefix, seq, gen, change.version);
    const started = performance.now();
    try {
      const log: S3Log = (l, m) => {
        if (l === "unusual") this.#status.reconnects++;
        this.#log(l, m);
      };
      const what = `change ${change.version}`;
      await putNew(this.client, name, record, what, this.#policy, log, this.options.signal);
    } catch (error) {
      this.#failure = `an earlier write failed: ${(error as Error).message}`;
      this.#status.state = "failed";
      throw error;
    }
    this.#status.last_ack_ms = Math.round((performance.now() - started) * 1000) / 1000;
    // The record before this one is settled: its other generations are garbage. A rewound
    // change's object is superseded by this one, once a change after it links to this one.
    for (const e of this.#superseded.filter((e) => e.seq < seq)) this.#packer?.discard(e);
    this.#superseded = this.#superseded.filter((e) => e.seq === seq);
    if (gen > 0 && this.unpacked.at(-1)?.seq === seq) this.#superseded.push(this.unpacked.pop()!);
    const version = change.version;
    const entry: ChangeEntry = {
      kind: "change",
      key: name,
      size: record.length,
      seq,
      gen,
      version,
    };
    this.unpacked.push(entry);
    this.#rewindVersion = this.#version;
    this.#version = change.version;
    this.#bytes += record.length;
    this.#last = entry;
    this.#lastFollows = follows;
    this.#next = { seq: seq + 1, gen: 0, follows: gen };
    this.#packer?.maybePack(seq);
  }

  /**
   * Drops the last change: nothing is written now; the next change takes its sequence
   * number with the next generation, which supersedes it.
   */
  rewind(): Promise<void> {
    const last = this.#last;
    if (this.#rewindVersion === undefined || last === undefined) {
      return Promise.reject(new Error("Cannot rewind: the last change is not on its own"));
    }
    this.#next = { seq: last.seq, gen: last.gen + 1, follows: this.#lastFollows };
    this.#version = this.#rewindVersion;
    this.#rewindVersion = undefined;
    this.#last = undefined;
    return Promise.resolve();
  }

  /** Never called: an object is stored whole or not at all, so there is no torn tail. */
  cutTail(): Promise<string> {
    return Promise.resolve("no torn tail to cut: S3 stores an object whole or not at all");
  }

  /** Bytes of the newest base and of everything after it, for the compaction policy. */
  compactionSizes(): CompactionSizes {
    return { baseBytes: this.#baseBytes, sealedLogBytes: this.#bytes - this.#baseBytes };
  }

  /** Holds the packer off while a compaction deletes what a pack would read. */
  async pausePacking(): Promise<void> {
    await this.#packer?.pause();
  }

  /** After a compaction, done or not: catches up with the bucket, then packs again. */
  async compacted(): Promise<void> {
    await this.resync().catch(() => {});
    this.#packer?.resume();
  }

  /** Why the backup takes no more changes, once it knows; the next change is refused with it. */
  get failure(): string | undefined {
    return this.#failure;
  }

  /**
   * Catches up with what a listing shows: a newer base (a compaction's) covers the change
   * objects up to its sequence, which are no longer the packer's to pack (it may have
   * deleted them); the counts start from it. Run before each pack and after each
   * compaction, it also checks that the backup still holds what this writer stored (see
   * `#lose`). One listing may leave an object out (an eventually consistent store, or a
   * compaction elsewhere between two of its pages), so a loss stops the backup only once
   * three listings in a row show one, seconds apart; the node's changes go on meanwhile.
   */
  async resync(): Promise<void> {
    for (let listing = 1;; listing++) {
      const loss = await this.#check();
      if (loss === undefined) return;
      if (listing === LISTINGS) return this.#lose(loss);
      this.#log("info", `the backup's listing lacks objects, to list again: ${loss}`);
      // As long as a request's longest pause between tries: a few seconds by default.
      const { retryDelayMs, backoff, retries } = this.#policy;
      await pause(retryDelayMs * backoff ** retries, this.options.signal);
    }
  }

  /** One listing: what it lacks of what this writer stored, or nothing once caught up. */
  async #check(): Promise<string | undefined> {
    // What the listing must reach: appends go on meanwhile, and a rewind's version is lower.
    const stored = {
      seq: this.#next.seq - 1,
      version: Math.min(this.#version, this.#rewindVersion ?? this.#version),
    };
    const others: string[] = [];
    let layout;
    try {
      layout = await readLayout(this.client, others);
    } catch (error) {
      if (!(error instanceof CorruptBackupError)) throw error;
      return error.where;
    }
    const prefix = this.client.url.prefix;
    const gone = [idKey(prefix), ...this.options.key ? [wrappedKeyKey(prefix)] : []]
      .find((key) => !others.includes(key));
    if (gone !== undefined) return `"${gone}" is not listed`;
    if (layout.lastSeq < stored.seq || layout.version < stored.version) {
      return `it ends at record ${layout.lastSeq} (version ${layout.version}), before ` +
        `record ${stored.seq} (version ${stored.version}), which this writer stored`;
    }
    // Not the backup's, so left alone (keys.ts): said at each listing until removed.
    for (const key of others.filter((key) => isStray(prefix, key))) {
      this.#log(
        "unusual",
        `the prefix holds an object that is not the backup's ("${key}" in ` +
          `${this.destination}), left alone: remove it`,
      );
    }
    const base = layout.bases.at(-1);
    this.#baseSeq = base?.seq ?? 0;
    this.#baseBytes = base?.size ?? 0;
    this.unpacked.splice(0, this.unpacked.findLastIndex((e) => e.seq <= this.#baseSeq) + 1);
    const since = this.unpacked.filter((e) => e.seq > layout.lastSeq);
    this.#bytes = layout.bytes + since.reduce((sum, e) => sum + e.size, 0);
  }

  /**
   * Objects this writer stored, or `init` did, are gone from S3: nothing of cln-backup
   * deletes them (the packer and compaction delete only what a newer object holds), so
   * something else does, most often a lifecycle rule expiring old objects under the prefix.
   * The backup no longer restores the node, which is as bad as none: like a failed write,
   * this refuses every later change, so the node stops at its next one.
   */
  #lose(what: string): void {
    const dir = this.options.lightningDir;
    this.#broken(
      `the backup in ${this.destination} lost objects: ${what}: something other than ` +
        `cln-backup deletes them (a lifecycle rule on the bucket? "${
          cliCommand("doctor", dir ? `--lightning-dir ${shellQuote(dir)}` : "")
        }" names ` +
        `one); the backup no longer restores the node: remove what deletes them, then init a ` +
        `new backup on a new prefix`,
    );
  }

  /**
   * An object this writer stored whole fails its checks (the packer read it): S3 changed or
   * lost its bytes, and no restore reads past it. As with a loss, every later change is
   * refused; `remedy` says what to do, when there is more than a new backup.
   */
  damaged(
    what: string,
    remedy = "no restore reads past it: init a new backup on a new prefix (the node's " +
      "database is intact)",
  ): void {
    this.#broken(`the backup in ${this.destination} is damaged: ${what}: ${remedy}`);
  }

  /** Refuses every later change with `failure`; the first such failure is the one kept. */
  #broken(failure: string): void {
    if (this.#failure !== undefined) return;
    this.#failure = failure;
    this.#status.state = "failed";
    this.#log("broken", failure);
  }

  /** Waits for a pack under way (tests, and a clean exit). */
  async settle(): Promise<void> {
    await this.#packer?.settle();
  }

  close(): void {
    this.#packer?.stop();
    if (this.#status.state !== "failed") this.#status.state = "disconnected";
  }
}
