/**
 * The backup a server keeps for its clients: a cln-backup directory, written through
 * {@linkcode FileBackend} (each append synced before it returns) and read through
 * {@linkcode FileBackupReader}, with the v1 server's rules for what it accepts.
 *
 * @module
 */
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import type { BackupDescription, BackupEntry, BackupState, Change } from "../backends/backend.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { baseName, LOCK_NAME, logName } from "../format/layout.ts";
import {
  encodeSegmentHeader,
  formatBackupId,
  SEGMENT_HEADER_SIZE,
  type SegmentHeader,
  SegmentKind,
} from "../format/segment.ts";
import { checkSealedBackupOnThread, checkSealedBaseOnThread } from "./base_check_thread.ts";
import { settleUpgrade, stagingDir, swapInStaged } from "./staged_upgrade.ts";
import { RECORD_HEADER_SIZE, RecordKind } from "../format/record.ts";
import { syncDir, writeFileDurably } from "../fs/durable.ts";
import { removeIfExists } from "../fs/exists.ts";
import { atStep } from "../fs/step_seam.ts";
import { readChain } from "../format/chain.ts";
import { continuingLogByVersion, redundantSegments } from "../compact/plan.ts";
import { deleteSegments } from "../compact/deletion.ts";
import { fromHex, sameBytes } from "../crypto/data_key.ts";
import { checkWrappedKey, describeWraps, WRAPPED_KEY_NAME } from "../crypto/wrapped_key.ts";
import { readWrappedKey } from "../crypto/wrapped_key_file.ts";
import { lockRekey } from "../backends/file/rekey_lock.ts";
import { keyDigest, type Place, type SealedChange } from "../wire/packets_v2.ts";
import { type BaseOwner, SealedInputError, sealedRecordHeader } from "./sealed_input.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { createFileBackup, writeBaseYielding } from "../backends/file/create.ts";
import { backupKind } from "../backends/open.ts";
import { readLayout } from "../format/layout.ts";
import type { Metadata } from "../wire/packets.ts";
import { checkFirstWrite } from "../backup/version_check.ts";
import { Compactor } from "../compact/compactor.ts";
import type { CompactionResult } from "../compact/compact.ts";
import { DEFAULT_POLICY } from "../compact/policy.ts";
import { readReport, type VerifyReport } from "../backup/verify.ts";
import { removeStaleScratch, verifyOnThread } from "./verify_thread.ts";
import { readingOnView, readOnView, removeStaleViews, viewPath } from "./segment_view.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand, nodeCommand } from "../fs/advised_command.ts";

/**
 * The most bytes a change of `statementBytes` (its statements' UTF-8 length, joined) adds to
 * a backup, for the quota: its record, which holds the statements raw or compressed smaller
 * (a roll's seal and the next log's header aside).
 */
export function mostChangeBytes(statementBytes: number): number {
  return RECORD_HEADER_SIZE + statementBytes;
}

/**
 * What STATUS and VERIFY say of a node's backup that is not made yet (its first write makes
 * it): an empty one, holding no bytes.
 */
export function unmadeBackup(): Omit<BackupDescription, "url"> {
  return {
    format: "cln-backup 3",
    snapshots: [],
    firstVersion: 0,
    lastVersion: 0,
    records: 0,
    bytes: 0,
    tornBytes: 0,
    tail: undefined,
  };
}

/** A request the backup refuses; the connection answers NACK and goes on. */
export class RefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RefusedError";
  }
}

/**
 * The refusal of the Python server's storage, a v1 `.dbak`: the command that converts it,
 * which prints the server's new command line.
 */
export function v1StorageRefusal(path: string): Error {
  return new Error(
    `Cannot serve backup: "${path}" is a v1 .dbak of the Python plugin, which this server ` +
      `does not write to: with the Python server stopped, convert it once with ` +
      `"${
        cliCommand("upgrade", shellQuote(pathToFileURL(path).href))
      }", then serve the directory it makes ` +
      `with --allow-v1 (it prints the command line)`,
  );
}

/** Why a server never compacts an encrypted backup itself, as its node is told. */
const COMPACT_WHERE_THE_KEY_IS = "the backup is encrypted, and the server holds no key: it is " +
  `compacted where the key is (lightning-cli backup-compact, or ${nodeCommand("compact")}), ` +
  "which uploads the new base";

/** A served backup's writer; its lock held elsewhere is most likely held by a second server. */
function openServed(url: string, dir: string, log: (message: string) => void): FileBackend {
  return FileBackend.open(url, dir, {
    log,
    keyless: true,
    lockHolder: "another server serving it",
  });
}

/** A backup a server keeps for its clients, held open and locked for writing while it serves. */
export class ServerStorage {
  #backend: FileBackend;
  /** A v1 server rewinds once; a second REWIND before the next change is ACKed unchanged. */
  #rewound = false;
  /** Compacts on request (COMPACT) only: the writer's node cannot see the server's sizes. */
  #compactor: Compactor | undefined;

  readonly #log: (message: string) => void;

  private constructor(
    readonly url: string,
    readonly dir: string,
    backend: FileBackend,
    log: (message: string) => void,
  ) {
    this.#backend = backend;
    this.#log = log;
    const { tail, version } = backend.state();
    if (tail) {
      log(
        `${tail.bytes} bytes at offset ${tail.offset} of "${tail.path}" fail their checks (a ` +
          `torn append, or a damaged change ${version + 1}): the first write decides, as the ` +
          `plugin's version check does`,
      );
    }
  }

  /**
   * Opens the backup at `dir` for serving, creating an empty one when nothing is there, and
   * takes its write lock for as long as the server runs.
   */
  static open(url: string, dir: string, log: (message: string) => void): ServerStorage {
    return ServerStorage.#open(url, dir, log, true)!;
  }

  /**
   * As {@linkcode ServerStorage.open}, but `undefined` when there is no backup at `dir`, and
   * none is made: a node that only reads (status, verify) leaves the disk as it was.
   */
  static openExisting(
    url: string,
    dir: string,
    log: (message: string) => void,
  ): ServerStorage | undefined {
    return ServerStorage.#open(url, dir, log, false);
  }

  static #open(
    url: string,
    dir: string,
    log: (message: string) => void,
    create: boolean,
  ): ServerStorage | undefined {
    // Before the backup is looked for: an upgrade cut short mid-swap left it aside.
    for (const line of settleUpgrade(dir)) log(line);
    switch (backupKind(dir)) {
      case "missing":
        if (!create) return undefined;
        createFileBackup(dir);
        log(`created the empty backup "${dir}" at version 0`);
        break;
      case "v1":
        throw v1StorageRefusal(dir);
      case "other":
        throw new Error(`Cannot serve backup: "${dir}" is not a backup: check the URL`);
    }
    const backend = openServed(url, dir, log);
    removeStaleScratch(dir);
    removeStaleViews(dir);
    return new ServerStorage(url, dir, backend, log);
  }

  /**
   * Whether the backup it holds open is no longer at its directory: the operator moved or
   * removed it (after `server remove-node`, to give the name a new backup). Told by the lock
   * file, which an upgrade's swap moves along with the backup it reopens.
   */
  moved(): boolean {
    let held: Deno.FileInfo;
    let there: Deno.FileInfo;
    try {
      held = this.#backend.lock.statSync();
    } catch (error) {
      // Closed by a reopen after a full disk that failed: the next write tries again.
      if (error instanceof Deno.errors.BadResource) return false;
      throw error;
    }
    try {
      there = Deno.lstatSync(`${this.dir}/${LOCK_NAME}`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return true;
      }
      throw error;
    }
    return held.ino !== there.ino || held.dev !== there.dev;
  }

  /** Where the backup stands, as its writer sees it, with the bytes its files hold. */
  state(): BackupState & { bytes: number } {
    return this.#backend.state();
  }

  /** Bytes of the uploads being received into temporary files here, on any connection. */
  #receiving = 0;

  /**
   * What the node's quota counts against a new upload: the backup's bytes and its uploads
   * being received (a write to the backup counts its bytes alone).
   */
  usedBytes(): number {
    return this.#backend.state().bytes + this.#receiving;
  }

  /** Bytes of the uploads being received here, on any connection. */
  uploadingBytes(): number {
    return this.#receiving;
  }

  /** Runs `work`, the receiving of an upload of `bytes`, counted in {@linkcode usedBytes}. */
  async receiving<T>(bytes: number, work: () => Promise<T>): Promise<T> {
    this.#receiving += bytes;
    try {
      return await work();
    } finally {
      this.#receiving -= bytes;
    }
  }

  /**
   * The backup's files as they stand, opened, for a restore to copy: every base and log. The
   * live log is copied to the end of its records as they stand now, between two appends (each
   * is one synchronous step): appends go on while the copy is sent, into the zeros after the
   * records, which a copy of the whole file would catch half read. A torn tail goes with the
   * copy, to its last byte that is not zero: the write that settles it may append meanwhile.
   * A file a compaction removes meanwhile stays readable while open, and one removed before
   * it was opened makes the listing start over.
   */
  openFiles(): { name: string; file: Deno.FsFile; size: number }[] {
    const { log, offset } = this.#backend.place();
    const { tail } = this.#backend.state();
    const live = logName(log);
    const end = tail ? tail.offset + tail.bytes : offset;
    for (let attempt = 0;; attempt++) {
      const layout = readLayout(this.dir);
      const opened: { name: string; file: Deno.FsFile; size: number }[] = [];
      try {
        const wrapped = `${this.dir}/${WRAPPED_KEY_NAME}`;
        const keyFile = this.#backend.keyId ? [{ path: wrapped }] : [];
        for (const { path } of [...keyFile, ...layout.bases, ...layout.logs]) {
          const file = Deno.openSync(path, { read: true });
          const name = basename(path);
          const size = file.statSync().size;
          opened.push({ name, file, size: name === live ? Math.min(end, size) : size });
        }
        return opened;
      } catch (error) {
        for (const { file } of opened) file.close();
        if (!(error instanceof Deno.errors.NotFound) || attempt === 10) throw error;
      }
    }
  }

  /**
   * What `status` shows: the backup's records and sizes, read from its files; for an
   * encrypted one, whom its key is wrapped for.
   */
  async describe(): Promise<BackupDescription & { wrappedFor?: string[] }> {
    const description = await this.#onView((dir) => new FileBackupReader(this.url, dir).describe());
    if (!description.encrypted) return description;
    let wrappedFor: string[] = [];
    try {
      wrappedFor = describeWraps(readWrappedKey(this.dir));
    } catch {
      // No key.json yet (an init cut short), or not one: none to name.
    }
    return { ...description, wrappedFor };
  }

  /**
   * Proves the backup restores, as `verify` does on a node (lib/backup/verify.ts), on a
   * worker thread; rejects with the first check that failed, or with `closed`'s reason once
   * it aborts (the worker stopped). An encrypted backup cannot be
   * restored without its key: it is read through (every checksum, the chain, the versions)
   * and said to be encrypted, for the node to restore with its key.
   */
  async verify(closed?: AbortSignal): Promise<VerifyReport & { encrypted?: true }> {
    if (!this.#backend.keyId) {
      return await this.#onView((dir) => verifyOnThread(this.url, dir, this.dir, closed));
    }
    const description = await this.#onView((dir) => new FileBackupReader(this.url, dir).describe());
    return { ...readReport(description), encrypted: true };
  }

  /** Views of the backup made so far (segment_view.ts): each read's has a name of its own. */
  #views = 0;

  /** Runs `read` on a view of the backup's segments, which a compaction meanwhile leaves be. */
  #onView<T>(read: (dir: string) => T | Promise<T>): Promise<T> {
    return readOnView(this.dir, this.#viewPath(), read);
  }

  #viewPath(): string {
    return viewPath(this.dir, ++this.#views);
  }

  /** Where an encrypted backup's next record goes (PLACE), and the key its segments name. */
  place(): Place {
    return {
      backupId: this.#backend.backupId,
      keyId: this.#backend.keyId,
      ...this.#backend.place(),
    };
  }

  /** What METADATA reports: a v1 server counts the snapshot as a record too. */
  metadata(): Omit<Metadata, "protocol"> {
    const state = this.#backend.state();
    const hasBase = readLayout(this.dir).bases.length > 0;
    return {
      version: state.version,
      prevVersion: state.rewindVersion ?? 0,
      versionCount: state.records + (hasBase ? 1 : 0),
    };
  }

  /**
   * Stores a change durably; one that does not follow the backup is refused. Once `closed`
   * aborts (the connection that sent it closed: taken over, say), its reason is thrown and
   * nothing is written: the record is written and synced in one synchronous step after that
   * check, so a close lands before the change or after all of it.
   */
  async append(change: Change, closed?: AbortSignal): Promise<void> {
    this.#reopenIfFailed();
    this.#refuseIfEncrypted(`change ${change.version}`);
    await this.#decideTail(change.version);
    const { version } = this.#backend.state();
    if (change.version !== version && change.version !== version + 1) {
      throw new RefusedError(
        `change ${change.version} does not follow the backup's version ${version}`,
      );
    }
    closed?.throwIfAborted();
    await this.#backend.append(change);
    this.#rewound = false;
  }

  /**
   * Opens the backup again once a write failed on a full disk, which makes the backend
   * refuse every other write: a plugin's goes with its stopped lightningd, but the server's
   * outlives the node, which would stay refused once the disk is fixed and it is restarted.
   * Opened again, it reads what the failed write left, as a server restart does (a torn tail
   * is decided by the next write), and removes its temporary files as an open does (an
   * upload in flight then fails, and is sent again; a read's view is no temporary file). Not
   * while a compaction runs on the backend: its end takes note of the files on it.
   */
  #reopenIfFailed(): void {
    // Any other failure (EIO) stays final, the node refused until the server restarts.
    if (!this.#backend.outOfRoom || this.#compactor?.running) return;
    this.#compactor = undefined;
    try {
      this.#backend.close();
    } catch (error) {
      // Closed by an earlier try whose open failed.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    this.#backend = openServed(this.url, this.dir, this.#log);
    this.#log("opened the backup again after a write failed: writes go on if the disk takes them");
  }

  /**
   * Decides bytes after the last valid record that fail their checks, as the plugin's
   * version check does: a client sends change `N` (or repeats `N`) only after checking the
   * node is at `N - 1` (or `N`). At the backup's version `B` they are a torn append, never
   * acknowledged, and are cut; one ahead, the node committed the change they held, so the
   * backup is damaged and every change is refused.
   */
  async #decideTail(version: number): Promise<void> {
    const state = this.#backend.state();
    if (!state.tail) return;
    const verdict = checkFirstWrite(state, {
      dataVersion: version,
      bumpedFrom: version === state.version ? undefined : version - 1,
    });
    if (verdict.action === "append") this.#log(await this.#backend.cutTail());
    // Any other change does not follow the backup, and is refused as such.
    else if (verdict.action === "stop" && verdict.reason === "damaged") {
      throw new RefusedError(verdict.message);
    }
  }

  /**
   * Stores a change its client sealed for the place it names (an encrypted backup): its
   * headers and checksums are checked, its version must follow the backup, and a seal that
   * rolls the log must carry the backup's version. Returns the version after it. `closed`
   * drops it as {@linkcode append}'s does: the seal (a roll) and the record are written in
   * one synchronous step after that check.
   */
  async appendSealed(change: SealedChange, closed?: AbortSignal): Promise<number> {
    this.#reopenIfFailed();
    if (!this.#backend.keyId) {
      throw new RefusedError(
        "the backup is not encrypted, and takes plain changes only: a plain and an encrypted " +
          "backup are never mixed; remove the node's backup.key, or give it a new backup",
      );
    }
    const record = this.#checked(() => sealedRecordHeader(change.record, RecordKind.Change));
    const seal = change.seal &&
      this.#checked(() => sealedRecordHeader(change.seal!, RecordKind.Seal));
    await this.#decideTail(record.version);
    const { version } = this.#backend.state();
    if (record.version !== version && record.version !== version + 1) {
      throw new RefusedError(
        `change ${record.version} does not follow the backup's version ${version}`,
      );
    }
    if (seal && seal.version !== version) {
      throw new RefusedError(
        `a seal at version ${seal.version}, where the backup is at ${version}`,
      );
    }
    const place = this.#backend.place();
    if (change.log !== place.log || change.offset !== place.offset) {
      throw new RefusedError(
        `change ${record.version} is sealed for offset ${change.offset} of log ${change.log}, ` +
          `where the next record goes at offset ${place.offset} of log ${place.log}: the ` +
          `client asks PLACE again after a reconnect or rewind`,
      );
    }
    closed?.throwIfAborted();
    await this.#backend.appendSealed({ ...change, version: record.version });
    this.#rewound = false;
    return record.version;
  }

  /**
   * Makes the empty backup an encrypted one (init --encrypt): its `key.json` (which the server
   * cannot open) and, unless the node has no database yet, the sealed base. The empty log is
   * written again under the new backup's id and key first, then `key.json`, then the base:
   * a crash at any step leaves an empty backup, which a new init takes. Once `closed` aborts
   * (the connection that sent it closed), its reason is thrown, the backup untouched.
   */
  async initSealed(
    wrappedKey: Uint8Array,
    base: Uint8Array,
    closed?: AbortSignal,
  ): Promise<number> {
    if (base.length === 0) return await this.initSealedFile(wrappedKey, undefined, closed);
    this.refuseSealedInit();
    const tmp = `${this.dir}/${baseName(0)}.sealed.tmp`;
    try {
      Deno.writeFileSync(tmp, base);
      return await this.initSealedFile(wrappedKey, tmp, closed);
    } finally {
      removeIfExists(tmp);
    }
  }

  /** Throws unless this backup may become an encrypted one: it is empty. */
  refuseSealedInit(): void {
    const state = this.#backend.state();
    const place = this.#backend.place();
    if (
      state.records !== 0 || readLayout(this.dir).bases.length > 0 || place.log !== 1 ||
      place.offset !== SEGMENT_HEADER_SIZE
    ) {
      throw new RefusedError(
        `an encrypted backup is made in an empty backup only, and this one is at version ` +
          `${state.version}: give the node a new backup on the server`,
      );
    }
  }

  /**
   * {@linkcode initSealed} with the sealed base in the file `base`, a temporary file in the
   * backup that is moved into place or removed (none: the node has no database yet).
   */
  async initSealedFile(
    wrappedKey: Uint8Array,
    base: string | undefined,
    closed?: AbortSignal,
  ): Promise<number> {
    this.refuseSealedInit();
    const owner = this.#checked(() => keyOwner(wrappedKey));
    let version = 0;
    if (base) {
      try {
        version = (await this.#checkedBase(base, owner)).number;
      } catch (error) {
        removeIfExists(base);
        throw error;
      }
      // Still its to make, and empty? Its connection may have closed (taken over, say), and
      // another may have written, while the base was read.
      if (
        closed?.aborted || this.#backend.state().records !== 0 ||
        readLayout(this.dir).bases.length > 0
      ) {
        removeIfExists(base);
        closed?.throwIfAborted();
        throw new RefusedError("the backup was written to while its encrypted base was checked");
      }
    }
    this.#backend.close();
    try {
      writeFileDurably(
        this.dir,
        logName(1),
        encodeSegmentHeader({ kind: SegmentKind.Log, number: 1, firstLog: 0, ...owner }),
      );
      writeFileDurably(this.dir, WRAPPED_KEY_NAME, wrappedKey);
      if (base) {
        Deno.renameSync(base, `${this.dir}/${baseName(version)}`);
        syncDir(this.dir);
      }
    } finally {
      if (base) removeIfExists(base);
      this.#backend = openServed(this.url, this.dir, this.#log);
    }
    this.#log(
      `made the backup "${this.dir}" encrypted (backup ${formatBackupId(owner.backupId)}, ` +
        `key ${formatBackupId(owner.keyId)}) at version ${version}`,
    );
    this.#rewound = false;
    return version;
  }

  /**
   * Replaces an encrypted backup's `key.json` (rekey: the same data key wrapped for new
   * secrets), atomically; one that does not name this backup and its key is refused, and so
   * is one for a `key.json` of SHA-256 `read` when another rekey replaced that one since.
   */
  replaceWrappedKey(wrappedKey: Uint8Array, read?: Uint8Array): number {
    const keyId = this.#backend.keyId;
    if (!keyId) throw new RefusedError("the backup is not encrypted: it has no key to rewrap");
    try {
      checkWrappedKey(wrappedKey, WRAPPED_KEY_NAME, this.#backend.backupId, keyId);
    } catch (error) {
      throw new RefusedError((error as Error).message);
    }
    // Read and replaced in one turn of the server's loop: no other rekey sent here comes
    // between, and one run on this host of the directory itself holds its rekey lock.
    using lock = lockRekey(this.dir);
    if (!lock) {
      throw new RefusedError(
        `another rekey is running on its backup directory (on the server's host): wait for it ` +
          `to finish, then run this again; ${WRAPPED_KEY_NAME} was not changed`,
      );
    }
    if (read !== undefined && !sameBytes(keyDigest(readWrappedKey(this.dir)), read)) {
      throw new RefusedError(
        `another rekey replaced ${WRAPPED_KEY_NAME} since this one read it: ${WRAPPED_KEY_NAME} ` +
          `was not changed by this one; run rekey again with the secret now in force (the one ` +
          `that other rekey was given)`,
      );
    }
    writeFileDurably(this.dir, WRAPPED_KEY_NAME, wrappedKey);
    this.#log(`replaced the wrapped key of "${this.dir}" (rekey: no record changed)`);
    return this.#backend.state().version;
  }

  /**
   * Starts taking the node's encrypted copy of this plain backup at `version` (upgrade
   * --encrypt): an empty staging directory beside the backup, holding its `key.json`, checked
   * to name a backup id and key id, which every segment uploaded must carry. Returns where
   * the segments go and the owner they are checked against.
   */
  beginUpgrade(version: number, wrappedKey: Uint8Array): { staging: string; owner: BaseOwner } {
    if (this.#backend.keyId) {
      throw new RefusedError(
        "the backup is encrypted already: nothing to upgrade (rekey changes its secret)",
      );
    }
    const at = this.#backend.state().version;
    if (version !== at) {
      throw new RefusedError(
        `the encrypted copy is of version ${version}, and the backup is at ${at}: run the ` +
          `upgrade again with the node stopped`,
      );
    }
    const owner = this.#checked(() => keyOwner(wrappedKey));
    const staging = stagingDir(this.dir);
    removeIfExists(staging);
    Deno.mkdirSync(staging, { mode: 0o700 });
    writeFileDurably(staging, WRAPPED_KEY_NAME, wrappedKey);
    return { staging, owner };
  }

  /**
   * Puts the staged encrypted copy in this plain backup's place (lib/server/staged_upgrade.ts),
   * once it is read through on a thread: every segment `owner`'s, sealed, passing its checks,
   * one chain ending at the backup's `version`, which no write moved meanwhile. Returns the
   * version; a failed check refuses it and the plain backup stays, as it does once `closed`
   * aborts (the connection that sent the copy closed), its reason thrown.
   */
  async commitUpgrade(owner: BaseOwner, version: number, closed?: AbortSignal): Promise<number> {
    const staging = stagingDir(this.dir);
    syncDir(staging);
    let copy: BackupDescription;
    try {
      copy = await checkSealedBackupOnThread(staging, owner);
    } catch (error) {
      if (error instanceof SealedInputError) throw new RefusedError(error.message);
      throw error;
    }
    // From here on, every step is synchronous: a close lands before the swap or after it.
    closed?.throwIfAborted();
    const at = this.#backend.state().version;
    if (this.#backend.keyId || copy.lastVersion !== version || at !== version) {
      throw new RefusedError(
        `the encrypted copy ends at version ${copy.lastVersion}, and the backup is at ${at}` +
          `${this.#backend.keyId ? ", encrypted" : ""}: nothing was changed; run the upgrade ` +
          `again with the node stopped`,
      );
    }
    atStep("upgrade-staged");
    this.stopCompaction();
    this.#compactor = undefined;
    this.#backend.close();
    try {
      swapInStaged(this.dir);
    } finally {
      this.#backend = openServed(this.url, this.dir, this.#log);
    }
    this.#rewound = false;
    this.#log(
      `made the backup "${this.dir}" encrypted (backup ${formatBackupId(owner.backupId)}, key ` +
        `${formatBackupId(owner.keyId)}), keeping versions ${copy.firstVersion} to ${version}`,
    );
    return version;
  }

  /** Removes an upload of an encrypted copy that did not finish. */
  abandonUpgrade(): void {
    removeIfExists(stagingDir(this.dir));
  }

  /**
   * Swaps in a base the node built and sealed (an encrypted backup's compaction, which only
   * the key holder can make): checked as for init, at a version the backup holds below its
   * newest change (so the one rewind stays possible), and newer than its newest base. It is
   * made durable under its own name first (temporary name, fsync, rename, directory fsync),
   * once the first log it names (bound to its records) is the first whose seal is at or
   * above its version (or the live log); only then are the older bases and the logs before
   * that one deleted, the list written durably first (compact/deletion.ts). A crash before the rename leaves the backup
   * as it was; after it, two bases and what the older needed, which readers and the next
   * open take. The base is read through on a worker thread first; the steps after that run
   * one after another, and the node's appends land before or after them, in the live log,
   * which is never deleted nor rewritten. Once `closed` aborts (the connection that sent it
   * closed) before those steps, its reason is thrown and the base is not swapped in.
   */
  async swapBase(tmp: string, closed?: AbortSignal): Promise<CompactionResult> {
    const started = performance.now();
    const keyId = this.#backend.keyId;
    if (!keyId) throw new RefusedError("a sealed base goes into an encrypted backup only");
    try {
      // Read through on a thread of its own; from here on, every step is synchronous.
      const header = await this.#checkedBase(tmp, { backupId: this.#backend.backupId, keyId });
      closed?.throwIfAborted();
      // The writer's counts, as the plain compaction reports them (compact/version_count.ts).
      const before = this.#backend.heldStats();
      const version = header.number;
      const state = this.#backend.state();
      const newest = readLayout(this.dir).bases.at(-1)?.version ?? 0;
      const highest = state.rewindVersion ?? state.version;
      if (version <= newest || version > highest) {
        throw new RefusedError(
          `a base at version ${version}, where a new base must be above the newest one ` +
            `(${newest}) and at most ${highest} (the version before the newest change)`,
        );
      }
      const firstLog = continuingLogByVersion(readChain(this.dir), version);
      // A node names the log the base continues in from its copy of these files, and binds it
      // to the base's records: another one would not open at its restore. A node from before
      // bases bound it leaves it to the server (a header field outside their records' data).
      if (header.firstLogBound && header.firstLog !== firstLog) {
        throw new RefusedError(
          `a base at version ${version} that continues in log ${header.firstLog}, where this ` +
            `backup continues from that version in log ${firstLog}`,
        );
      }
      const file = Deno.openSync(tmp, { write: true });
      try {
        if (!header.firstLogBound) file.writeSync(encodeSegmentHeader({ ...header, firstLog }));
        file.syncSync();
      } finally {
        file.close();
      }
      Deno.renameSync(tmp, `${this.dir}/${baseName(version)}`);
      syncDir(this.dir);
      atStep("compact-after-base");
      const redundant = redundantSegments(readChain(this.dir), DEFAULT_POLICY.retain);
      deleteSegments(this.dir, redundant.map((path) => basename(path)));
      this.#backend.compacted();
      const after = this.#backend.heldStats();
      this.#log(`swapped in the node's sealed base at version ${version}`);
      return {
        before,
        after,
        base_version: version,
        versions_folded: Math.max(0, before.version_count - after.version_count),
        bytes_freed: Math.max(0, before.backupsize - after.backupsize),
        seconds: Math.round(performance.now() - started) / 1000,
      };
    } finally {
      removeIfExists(tmp);
    }
  }

  /**
   * Where a connection's temporary file of kind `what` goes: an upload (a sealed base or a
   * snapshot, in DATA packets or one v1 SNAPSHOT), what is made of it, or a v1 restore's
   * spool. A temporary name in the backup, which the next open removes if the server dies
   * before it is done with it.
   */
  uploadPath(session: number, what = "upload"): string {
    return `${this.dir}/${what}-${session}.tmp`;
  }

  /** The header of the sealed base at `tmp`, read through on a thread; a failure refuses it. */
  async #checkedBase(tmp: string, owner: BaseOwner): Promise<SegmentHeader> {
    try {
      return await checkSealedBaseOnThread(tmp, owner);
    } catch (error) {
      if (error instanceof SealedInputError) throw new RefusedError(error.message);
      throw error;
    }
  }

  /** Runs a check of sealed input; its failure is a refusal. */
  #checked<T>(check: () => T): T {
    try {
      return check();
    } catch (error) {
      if (error instanceof SealedInputError) throw new RefusedError(error.message);
      throw error;
    }
  }

  #refuseIfEncrypted(what: string): void {
    if (this.#backend.keyId) {
      throw new RefusedError(
        `${what} is plain, and the backup is encrypted: the node seals its changes with its ` +
          `backup.key, which is missing beside its backup.lock: put it back ("${
            nodeCommand("rekey", "<url> --key-file <lightning-dir>")
          }"), never mix a plain backup into an encrypted one`,
      );
    }
  }

  /**
   * Stores a snapshot as the backup's base; only an empty backup takes one. Once `closed`
   * aborts (the connection that sent it closed), its reason is thrown and no base is left.
   */
  async storeSnapshot(version: number, database: Uint8Array, closed?: AbortSignal): Promise<void> {
    this.refuseSnapshot(version);
    const copy = `${this.dir}/snapshot-${Deno.pid}.tmp`;
    try {
      Deno.writeFileSync(copy, database);
      await this.storeSnapshotFile(version, copy, closed);
    } finally {
      Deno.removeSync(copy);
    }
  }

  /** Throws unless a snapshot (at `version`, when known) may go into this backup: an empty, plain one. */
  refuseSnapshot(version?: number): void {
    this.#refuseIfEncrypted(version === undefined ? "a snapshot" : `snapshot ${version}`);
    const state = this.#backend.state();
    if (state.version !== 0 || state.records !== 0 || readLayout(this.dir).bases.length > 0) {
      throw new RefusedError(
        `a snapshot goes into an empty backup only, and this one is at version ${state.version}`,
      );
    }
  }

  /**
   * {@linkcode storeSnapshot} of the database in the file `path` (left for the caller); the
   * event loop runs between the base's parts, so the server's other connections go on, and
   * one of them may take the backup over: once `closed` aborts, the base is given up.
   */
  async storeSnapshotFile(version: number, path: string, closed?: AbortSignal): Promise<void> {
    this.refuseSnapshot(version);
    closed?.throwIfAborted();
    await writeBaseYielding(this.dir, { version, path }, {
      backupId: this.#backend.backupId,
      firstLog: this.#backend.liveSequence,
    }, closed);
    this.#backend.compacted();
    this.#rewound = false;
  }

  /**
   * Drops the last change when `to` is the version before it. Returns the version after;
   * a second rewind in a row changes nothing, as in the v1 server.
   */
  async rewind(to: number): Promise<number> {
    this.#reopenIfFailed();
    const state = this.#backend.state();
    if (this.#rewound) return state.version;
    if (state.rewindVersion === undefined || to !== state.rewindVersion) {
      throw new RefusedError(
        `cannot rewind to version ${to}: the backup is at ${state.version}` +
          (state.rewindVersion === undefined
            ? " and cannot rewind"
            : `, before it ${state.rewindVersion}`),
      );
    }
    await this.#backend.rewind();
    this.#rewound = true;
    return this.#backend.state().version;
  }

  /**
   * Compacts the backup in a worker, beside the writes (see lib/compact/compactor.ts); a
   * second request joins the running one. Rejects when it fails, the backup untouched.
   */
  compact(): Promise<CompactionResult> {
    if (this.#backend.keyId) return Promise.reject(new Error(COMPACT_WHERE_THE_KEY_IS));
    this.#compactor ??= new Compactor(this.#backend, () => ({ ...DEFAULT_POLICY, auto: false }));
    return this.#compactor.compact();
  }

  /**
   * What a restore sends, up to `toVersion`, read from a view of the backup's segments as
   * they stand (segment_view.ts): a compaction meanwhile deletes and rewrites them.
   */
  entries(toVersion: number): Iterable<BackupEntry> {
    return readingOnView(
      this.dir,
      this.#viewPath(),
      (dir) => new FileBackupReader(this.url, dir).entries(toVersion),
    );
  }

  /** Stops a running compaction: what it left is finished or cleaned on the next open. */
  stopCompaction(): void {
    this.#compactor?.stop();
  }

  /** Stops a running compaction, then closes the backup and releases its lock. */
  close(): void {
    this.stopCompaction();
    this.#backend.close();
  }
}

/** The backup id and key id a `key.json` names, checked to be one (it cannot be opened here). */
function keyOwner(wrappedKey: Uint8Array): { backupId: Uint8Array; keyId: Uint8Array } {
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(new TextDecoder().decode(wrappedKey));
  } catch {
    // Refused below.
  }
  const backupId = fromHex(json?.backup_id, 16);
  const keyId = fromHex(json?.key_id, 8);
  if (!backupId || !keyId) throw new SealedInputError("the key.json sent is not a wrapped key");
  try {
    checkWrappedKey(wrappedKey, WRAPPED_KEY_NAME, backupId, keyId);
  } catch (error) {
    throw new SealedInputError((error as Error).message);
  }
  return { backupId, keyId };
}
