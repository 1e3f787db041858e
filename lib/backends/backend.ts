/**
 * The storage interface every backup destination implements.
 *
 * @module
 */

/** One database transaction as lightningd reported it in `db_write`. */
export interface Change {
  /** The `data_version` the database holds once this transaction commits. */
  version: number;
  /** The transaction's SQL statements, in the order lightningd sent them. */
  statements: readonly string[];
}

/**
 * What a backup holds, in the order a restore applies it: an optional snapshot (a whole
 * SQLite database file, streamed in parts), then changes.
 */
export type BackupEntry =
  /** `bytes` hold until the next entry is read (see {@linkcode BackupReader.entries}). */
  | { kind: "snapshot-part"; version: number; bytes: Uint8Array }
  | { kind: "snapshot-end"; version: number; totalBytes: number }
  | { kind: "change"; version: number; statements: string[] }
  /**
   * Last, when the backup ends in bytes that fail their checks: read alone, a record torn by
   * a crash (never acknowledged) cannot be told from a damaged last change. `version` is
   * where the backup stops before them.
   */
  | { kind: "tail"; version: number } & Tail;

/** Bytes at the end of a backup that fail their checks. */
export interface Tail {
  /** The file that holds them. */
  path: string;
  /** Where they start in that file. */
  offset: number;
  /** How many bytes they are. */
  bytes: number;
}

/** Where a backup stands, as its writer sees it. */
export interface BackupState {
  /** Version of the last stored change or snapshot (0 for an empty backup). */
  version: number;
  /**
   * The version the backup would be at without its last change, when that change can be
   * dropped by {@linkcode Backend.rewind}; `undefined` when it cannot (no change on top of
   * the snapshot, or the backup is empty).
   */
  rewindVersion: number | undefined;
  /** Records stored (changes and snapshot parts). */
  records: number;
  /** Bytes on disk; unknown for a backup on a server. */
  bytes?: number;
  /**
   * Bytes after the last valid record that fail their checks: a record torn by a crash, or a
   * damaged last change. Only the node's version can tell (see version_check.ts); until
   * {@linkcode Backend.cutTail} cuts them, nothing can be appended. A server decides its own.
   */
  tail: Tail | undefined;
  /** For a backup on a server: how the connection to it fares. */
  connection?: ConnectionStatus;
  /** For several destinations: each one's state. */
  destinations?: DestinationStatus[];
  /** Set while a destination has failed and the others go on without it. */
  alarm?: string;
  /**
   * Why the backup takes no more changes, once it knows before the next change comes (an S3
   * backup whose objects were deleted behind it): that change is refused with it.
   */
  failure?: string;
  /** Its records are sealed under a data key that never leaves the node (encrypted backups). */
  encrypted?: boolean;
  /** For asynchronous destinations (backup.lock's `async_urls`): how far behind each is. */
  asyncDestinations?: AsyncDestinationStatus[];
}

/** An asynchronous destination, as `backup-status` shows it. */
export interface AsyncDestinationStatus {
  /** The destination's URL. */
  url: string;
  /**
   * `waiting`: not started yet (it starts after the node's first write of this run);
   * `caught-up`: it holds every change the primary holds; `behind`: copying; `failing`: its
   * last attempt failed (`error`), and it tries again.
   */
  state: "waiting" | "caught-up" | "behind" | "failing";
  /**
   * Its version: while it is down, the one it held when last open; `null` until it has been
   * opened in this run (what it holds is not known yet).
   */
  version: number | null;
  /** Versions the primary holds that it does not; `null` while its version is. */
  lag_versions: number | null;
  /** Seconds since it last held everything the primary held (since start, if never). */
  lag_seconds: number;
  /** The last error, while failing. */
  error: string | null;
  /** How its connection fares, for a backup on a server (as last seen while down); else `null`. */
  connection: ConnectionStatus | null;
}

/** One of several destinations, as `backup-status` shows it. */
export interface DestinationStatus {
  /** The destination's URL. */
  url: string;
  /** The version it holds. */
  version: number;
  /**
   * `broken`: it failed, and gets no more changes (`mirror_failure: "degrade"`); `failed`: a
   * write to it failed, which stopped the node (`"stop"`).
   */
  state: "ok" | "broken" | "failed";
  /**
   * Why it broke or failed, or why it will refuse the next change (an S3 backup that lost
   * objects, still `ok` until then); else `null`.
   */
  error: string | null;
  /** How its connection fares, for a backup on a server; else `null`. */
  connection: ConnectionStatus | null;
}

/** A remote backup's connection, as `backup-status` shows it. */
export interface ConnectionStatus {
  /** `host:port`, and the proxy's when there is one. */
  destination: string;
  /**
   * `connecting` while a connection is being opened, `connected` once it is up, `reconnecting`
   * after one was lost, `failed` once the backup gave up, `disconnected` before the first connect
   * and after close.
   */
  state: "connecting" | "connected" | "reconnecting" | "disconnected" | "failed";
  /** Reconnects since the plugin started. */
  reconnects: number;
  /** Round trip of the last acknowledged write, in milliseconds. */
  last_ack_ms: number | null;
}

/** A backup being written to by the plugin. */
export interface Backend {
  /** The URL it was opened from. */
  readonly url: string;
  /** Where the backup stands now. */
  state(): BackupState;
  /**
   * For a backend that opens in the background (a server's): resolves once
   * {@linkcode state} is known, rejects with why it cannot be. Absent: ready at once.
   */
  ready?(): Promise<void>;
  /** Stores a change durably: on return it survives a crash or power cut. */
  append(change: Change): Promise<void>;
  /** Drops the last change for good (it was never committed by the node). */
  rewind(): Promise<void>;
  /** Cuts the tail (a record torn by a crash, never acknowledged); returns what it did. */
  cutTail(): Promise<string>;
  /** For a backend opened to sync later (an async copy's file backup): syncs what it holds. */
  flush?(): Promise<void>;
  /**
   * The backup's id in hex, which its segments, objects or server's backup carry from its
   * creation on (compactions and rekeys keep it): it tells this backup from another found at
   * its URL. `undefined` for a backup that has none (the Python server's, wire v1).
   */
  backupIdHex?(): Promise<string | undefined>;
  /** Closes the backup, releasing its files or connection. */
  close(): void;
}

/** Facts about a backup, for `status` and `verify`. */
export interface BackupDescription {
  /** The URL it was opened from. */
  url: string;
  /** Its format in words, e.g. `cln-backup 3` or `v1 (Python backup plugin)`. */
  format: string;
  /** Set for an encrypted backup (its records are sealed; see lib/crypto/). */
  encrypted?: boolean;
  /** Versions of the snapshots held, oldest first. */
  snapshots: number[];
  /** Version of its oldest record (0 when it holds none). */
  firstVersion: number;
  /** Version of its newest record (0 when it holds none). */
  lastVersion: number;
  /** Records it holds, snapshots' included. */
  records: number;
  /** Bytes it holds. */
  bytes: number;
  /** Bytes a crash left after the last valid record (cut on the next write). */
  tornBytes: number;
  /** Where those bytes are. */
  tail: Tail | undefined;
  /** Objects under an S3 backup's prefix named like its own but none of them: not read. */
  strays?: string[];
}

/** A backup being read, by restore or status. */
export interface BackupReader {
  /** The URL it was opened from. */
  readonly url: string;
  /** Describes the backup as it is now. */
  describe(): BackupDescription;
  /**
   * Streams what a restore applies, up to and including `toVersion` when given: the newest
   * snapshot at or below it, then the changes after that snapshot. A snapshot part's bytes
   * hold until the next entry is read (a reader may reuse their buffer, so that a snapshot
   * of any size passes through a few MiB): copy them to keep them longer.
   */
  entries(toVersion?: number): Iterable<BackupEntry>;
  /** Releases what the reader holds (a fetched backup's temporary copy). */
  close(): void;
}
