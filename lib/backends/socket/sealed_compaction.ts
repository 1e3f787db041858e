/**
 * Compaction of an encrypted backup on a server, made where the key is (the plugin, or the
 * CLI), never on the server, which cannot read it: the backup's files are fetched into a
 * scratch directory (RESTORE), restored with the key up to the target version, that database
 * sealed as a base the way a file backup's compaction seals one, and the base uploaded
 * (SEALED_BASE); the server checks it and swaps it in for what it covers
 * (lib/server/storage.ts), while the node's writes go on over their own connection.
 *
 * @module
 */
import { Interrupted } from "../../fs/interrupt.ts";
import type { CompactionResult } from "../../compact/compact.ts";
import { compactionResult } from "../../compact/result.ts";
import { restoreBackup } from "../../backup/restore.ts";
import { writeBase } from "../file/create.ts";
import { baseName } from "../../format/layout.ts";
import { readChain } from "../../format/chain.ts";
import { continuingLogByVersion } from "../../compact/plan.ts";
import { DataKey } from "../../crypto/data_key.ts";
import { decodeError, decodeJson, encodeSealedBase, V2Type } from "../../wire/packets_v2.ts";
import { sendFile } from "./send_file.ts";
import { UPGRADE_PREFIX } from "./sealed_upgrade.ts";
import { type SocketUrl, WireConnection } from "./connection.ts";
import { CopiedBackupReader } from "./copy_reader.ts";
import type { NodeCredential } from "./credential.ts";

/** What a compaction of an encrypted server backup needs; plain data, for a worker. */
export interface SealedCompactionRequest {
  /** The backup's URL. */
  url: string;
  /** The server's address, parsed from `url`. */
  target: SocketUrl;
  /** The node's credential, for wire v2. */
  credential: NodeCredential;
  /** The data key's bytes. */
  key: Uint8Array;
  /** Fold every change up to this version (the one before the newest, so it may rewind). */
  version: number;
  /** Where to fetch and build: `cln-backup-scratch` in the plugin's case. */
  scratch: string;
  /** Bound on connecting, and on each wait of the fetch. */
  timeoutMs: number;
  /** Bound on the wait for the server to check the base and swap it in. */
  compactTimeoutMs: number;
  /** The node is stopped (`compact` on the command line): a failure says so, not that it runs. */
  nodeStopped?: boolean;
}

const WORK_PREFIX = "sealed-compaction-";

/** What a killed compaction, fetch or upgrade --encrypt (a plain copy among it) leaves. */
const STALE_PREFIXES = [WORK_PREFIX, "cln-backup-fetch-", UPGRADE_PREFIX];

/** Removes what a compaction or upgrade that was killed left in `scratch`. */
export function removeStaleWork(scratch: string): void {
  try {
    for (const entry of Deno.readDirSync(scratch)) {
      if (STALE_PREFIXES.some((prefix) => entry.name.startsWith(prefix))) {
        Deno.removeSync(`${scratch}/${entry.name}`, { recursive: true });
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Opens the data key of the backup copied into `dir` (its key.json), as the CLI does. */
export type Unlock = (dir: string) => Promise<DataKey | undefined>;

/**
 * Builds the sealed base at `request.version` here and has the server swap it in. The key is
 * the plugin's (its bytes), or opened by `request.key` from the copy's key.json (the CLI).
 */
export async function compactSealed(
  request: Omit<SealedCompactionRequest, "key"> & { key: Uint8Array | Unlock },
): Promise<CompactionResult> {
  const { url, target, credential, version, scratch } = request;
  const started = performance.now();
  Deno.mkdirSync(scratch, { recursive: true });
  const work = Deno.makeTempDirSync({ dir: scratch, prefix: WORK_PREFIX });
  try {
    const copy = await CopiedBackupReader.fetch(url, target, request.timeoutMs, credential, work);
    const base = `${work}/base/${baseName(version)}`;
    try {
      const key = request.key instanceof Uint8Array
        ? await DataKey.from(request.key)
        : await request.key(copy.local.dir);
      if (!key) throw new Error("the backup on the server is not encrypted");
      copy.local.key = key;
      const newest = readChain(copy.local.dir).bases.at(-1)?.number ?? 0;
      // Compacted already (a second call): nothing changes, as with any other backup.
      if (version <= newest) {
        // Counted as the server counts it after a swap (a base once, whatever its parts).
        const held = copy.local.heldStats();
        const seconds = Math.round(performance.now() - started) / 1000;
        return compactionResult(held, held, { base_version: null, versions_folded: 0, seconds });
      }
      const database = `${work}/lightningd.sqlite3`;
      restoreBackup(copy, database, { toVersion: version, durable: false });
      const chain = readChain(copy.local.dir);
      // The log the base continues in is bound to its records, so it is named here, from the
      // copy, as the server names it from its own files (sealed logs never change; the live
      // one holds version `version` already, so its seal, whenever it comes, is above it).
      const firstLog = continuingLogByVersion(chain, version);
      Deno.mkdirSync(`${work}/base`);
      writeBase(`${work}/base`, { version, path: database }, {
        backupId: chain.backupId,
        firstLog,
        key,
      });
      Deno.removeSync(database);
    } finally {
      copy.close();
    }
    const conn = await WireConnection.open(target, request.timeoutMs, credential);
    try {
      await sendFile(conn, base, encodeSealedBase);
      const reply = await conn.receive(request.compactTimeoutMs);
      if (reply.type === V2Type.Error) throw new Error(decodeError(reply).message);
      return decodeJson<CompactionResult>(reply, V2Type.CompactRes);
    } finally {
      conn.close();
    }
  } catch (error) {
    // Ctrl-C at the restore's or the base's checkpoint: the CLI says "Interrupted", exit 130.
    if (error instanceof Interrupted) throw error;
    const why = (error as Error).message.replace(/^Cannot \w+ \w+: /, "");
    throw new Error(
      `Cannot compact backup: ${why} (building the encrypted base at version ${version} ` +
        `here); the backup on the server restores as before (the server swaps a base in ` +
        `whole or not at all)${request.nodeStopped ? "" : " and the node keeps running"}`,
    );
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
}
