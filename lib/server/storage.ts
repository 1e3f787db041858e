/**
 * The backup a server keeps for its clients: a cln-backup directory, written through
 * {@linkcode FileBackend} (each append synced before it returns) and read through
 * {@linkcode FileBackupReader}, with the v1 server's rules for what it accepts.
 *
 * @module
 */
import { basename } from "node:path";
import type { BackupDescription, BackupEntry, BackupState, Change } from "../backends/backend.ts";
import { FileBackend } from "../backends/file/writer.ts";
import { FileBackupReader } from "../backends/file/reader.ts";
import { createFileBackup, writeBase } from "../backends/file/create.ts";
import { backupKind } from "../backends/open.ts";
import { readLayout } from "../format/layout.ts";
import type { Metadata } from "../wire/packets.ts";
import { checkFirstWrite } from "../backup/version_check.ts";
import { Compactor } from "../compact/compactor.ts";
import type { CompactionResult } from "../compact/compact.ts";
import { DEFAULT_POLICY } from "../compact/policy.ts";
import type { VerifyReport } from "../backup/verify.ts";
import { removeStaleScratch, verifyOnThread } from "./verify_thread.ts";

/** A request the backup refuses; the connection answers NACK and goes on. */
export class RefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RefusedError";
  }
}

export class ServerStorage {
  readonly #backend: FileBackend;
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
    switch (backupKind(dir)) {
      case "missing":
        createFileBackup(dir);
        log(`created the empty backup "${dir}" at version 0`);
        break;
      case "v1":
        throw new Error(
          `Cannot serve backup: "${dir}" is a v1 .dbak of the Python plugin: convert it once ` +
            `with "deno task upgrade -- --lightning-dir DIR" (DIR/backup.lock naming it), then ` +
            `serve the converted directory`,
        );
      case "other":
        throw new Error(`Cannot serve backup: "${dir}" is not a backup: check the URL`);
    }
    const backend = FileBackend.open(url, dir, { log });
    removeStaleScratch(dir);
    return new ServerStorage(url, dir, backend, log);
  }

  state(): BackupState & { bytes: number } {
    return this.#backend.state();
  }

  /**
   * The backup's files as they stand, opened, for a restore to copy: every base and log. The
   * live log's size is taken with it, between two appends (each is one synchronous step), so
   * it ends on a whole record; a file a compaction removes meanwhile stays readable while
   * open, and one removed before it was opened makes the listing start over.
   */
  openFiles(): { name: string; file: Deno.FsFile; size: number }[] {
    for (let attempt = 0;; attempt++) {
      const layout = readLayout(this.dir);
      const opened: { name: string; file: Deno.FsFile; size: number }[] = [];
      try {
        for (const { path } of [...layout.bases, ...layout.logs]) {
          const file = Deno.openSync(path, { read: true });
          opened.push({ name: basename(path), file, size: file.statSync().size });
        }
        return opened;
      } catch (error) {
        for (const { file } of opened) file.close();
        if (!(error instanceof Deno.errors.NotFound) || attempt === 10) throw error;
      }
    }
  }

  /** What `status` shows: the backup's records and sizes, read from its files. */
  describe(): BackupDescription {
    return new FileBackupReader(this.url, this.dir).describe();
  }

  /**
   * Proves the backup restores, as `verify` does on a node (lib/backup/verify.ts), on a
   * worker thread; rejects with the first check that failed.
   */
  verify(): Promise<VerifyReport> {
    return verifyOnThread(this.url, this.dir);
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

  /** Stores a change durably; one that does not follow the backup is refused. */
  async append(change: Change): Promise<void> {
    await this.#decideTail(change.version);
    const { version } = this.#backend.state();
    if (change.version !== version && change.version !== version + 1) {
      throw new RefusedError(
        `change ${change.version} does not follow the backup's version ${version}`,
      );
    }
    await this.#backend.append(change);
    this.#rewound = false;
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

  /** Stores a snapshot as the backup's base; only an empty backup takes one. */
  storeSnapshot(version: number, database: Uint8Array): void {
    const state = this.#backend.state();
    if (state.version !== 0 || state.records !== 0 || readLayout(this.dir).bases.length > 0) {
      throw new RefusedError(
        `a snapshot goes into an empty backup only, and this one is at version ${state.version}`,
      );
    }
    const copy = `${this.dir}/snapshot-${Deno.pid}.tmp`;
    try {
      Deno.writeFileSync(copy, database);
      writeBase(this.dir, { version, path: copy }, {
        backupId: this.#backend.backupId,
        firstLog: this.#backend.liveSequence,
      });
    } finally {
      Deno.removeSync(copy);
    }
    this.#backend.compacted();
    this.#rewound = false;
  }

  /**
   * Drops the last change when `to` is the version before it. Returns the version after;
   * a second rewind in a row changes nothing, as in the v1 server.
   */
  async rewind(to: number): Promise<number> {
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
    this.#compactor ??= new Compactor(this.#backend, () => ({ ...DEFAULT_POLICY, auto: false }));
    return this.#compactor.compact();
  }

  /** What a restore sends, up to `toVersion`. */
  entries(toVersion: number): Iterable<BackupEntry> {
    return new FileBackupReader(this.url, this.dir).entries(toVersion);
  }

  /** Stops a running compaction: what it left is finished or cleaned on the next open. */
  stopCompaction(): void {
    this.#compactor?.stop();
  }

  close(): void {
    this.stopCompaction();
    this.#backend.close();
  }
}
