/**
 * Reading a `socket:` backup over wire v2: RESTORE copies the backup's files, as the server
 * holds them, into a temporary directory, which is then read as a local backup, with every
 * check a local restore makes. The bytes cross the wire once, undecoded; restore, status
 * and verify run at local speed. A hostile server can name only backup files, inside the
 * temporary directory, and write no more than it announced.
 *
 * @module
 */
import type { BackupDescription, BackupEntry, BackupReader } from "../backend.ts";
import { FileBackupReader } from "../file/reader.ts";
import { isSegmentName } from "../../format/layout.ts";
import { WRAPPED_KEY_NAME } from "../../crypto/wrapped_key.ts";
import { encodeFrame, V2Type } from "../../wire/packets_v2.ts";
import { receiveFiles } from "../../wire/receive_files.ts";
import { refusal, type SocketUrl, WireConnection } from "./connection.ts";
import type { NodeCredential } from "./credential.ts";
import { makeScratchDir, removeScratchDir } from "../../fs/scratch_dir.ts";

export class CopiedBackupReader implements BackupReader {
  /** The copy, read as a local backup; an encrypted one is given its key (cli/unlock.ts). */
  readonly local: FileBackupReader;

  private constructor(
    readonly url: string,
    readonly tmp: string,
    /** The version DONE said the files hold. */
    readonly sentVersion: number,
  ) {
    this.local = new FileBackupReader(url, `${tmp}/backup`);
  }

  /** Copies the backup of `credential`'s node from the server `target` names. */
  static async fetch(
    url: string,
    target: SocketUrl,
    timeoutMs: number,
    credential: NodeCredential,
    scratch?: string,
  ): Promise<CopiedBackupReader> {
    const tmp = makeScratchDir("fetch", scratch);
    let conn: WireConnection | undefined;
    try {
      conn = await WireConnection.open(target, timeoutMs, credential);
      const sent = await copyFiles(conn, `${tmp}/backup`);
      return new CopiedBackupReader(url, tmp, sent);
    } catch (error) {
      removeScratchDir(tmp);
      throw error;
    } finally {
      conn?.close();
    }
  }

  describe(): BackupDescription {
    let description: BackupDescription;
    try {
      description = { ...this.local.describe(), url: this.url };
    } catch (error) {
      throw this.#onServer(error);
    }
    this.#checkEnd(description.lastVersion, Infinity);
    return description;
  }

  *entries(toVersion?: number): Iterable<BackupEntry> {
    let last = 0;
    try {
      for (const entry of this.local.entries(toVersion)) {
        last = entry.version;
        yield entry;
      }
    } catch (error) {
      throw this.#onServer(error);
    }
    this.#checkEnd(last, toVersion ?? Infinity);
  }

  /**
   * Refuses a copy that ends before the version DONE gave (up to `wanted`): a server that
   * left out the last log hands back an older state, which restored can make the node
   * broadcast revoked state.
   */
  #checkEnd(last: number, wanted: number): void {
    if (last >= Math.min(this.sentVersion, wanted)) return;
    throw new Error(
      `Cannot read backup: ${this.url} said it holds version ${this.sentVersion}, but the ` +
        `files it sent end at version ${last}: try again, and check the server's log and ` +
        `its storage`,
    );
  }

  /** An error that names a file of the copy names it on the server (the copy is removed). */
  #onServer(error: unknown): unknown {
    if (error instanceof Error) {
      error.message = error.message.replaceAll(`${this.local.dir}/`, `${this.url} `);
    }
    return error;
  }

  close(): void {
    removeScratchDir(this.tmp);
  }
}

/** RESTORE, then each FILE and its DATA into `dir`, until DONE; returns DONE's version. */
async function copyFiles(conn: WireConnection, dir: string): Promise<number> {
  Deno.mkdirSync(dir);
  await conn.send(encodeFrame(V2Type.Restore));
  return await receiveFiles({
    next: async () => {
      const packet = await conn.receive();
      if (packet.type === V2Type.Error) throw refusal(packet, "the restore");
      return packet;
    },
    accept: (name) => {
      // An encrypted backup's wrapped key comes too: the node opens it with its secret.
      if (!isSegmentName(name) && name !== WRAPPED_KEY_NAME) {
        throw new Error(`Cannot read backup: the server sent a file named ${JSON.stringify(name)}`);
      }
    },
    misplaced: (what) =>
      new Error(
        `Cannot read backup: the server sent ${what}: try again, and check the server's log`,
      ),
  }, dir);
}
