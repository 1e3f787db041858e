/**
 * The plugin's key file, `backup.key` beside `backup.lock` in the lightning dir: the data key
 * of an encrypted backup, unwrapped, so the plugin can seal each change without asking anyone.
 * It is as secret as the node's database and `hsm_secret`: mode 0600; one others may read is
 * refused by the commands, and the plugin refuses to start.
 *
 * @module
 */
import { writeFileDurably } from "../fs/durable.ts";
import { checkSecretMode } from "../fs/secret_mode.ts";
import { DataKey, fromHex, hex, sameBytes } from "./data_key.ts";
import { shellQuote } from "../fs/shell_quote.ts";
import { cliCommand } from "../fs/advised_command.ts";

export const KEY_FILE = "backup.key";
/** How messages name it. */
export const KEY_FILE_WHAT = "the key file";

const FIELD = "cln_backup_data_key";

/** Writes `<dir>/backup.key` durably, readable by its owner only. */
export function writeKeyFile(dir: string, key: DataKey): void {
  const text = JSON.stringify({ [FIELD]: hex(key.bytes) }) + "\n";
  writeFileDurably(dir, KEY_FILE, new TextEncoder().encode(text), 0o600);
}

/**
 * Removes `<dir>/backup.key` if it holds `key`: one that holds another (an interrupted init's,
 * which opens what that init left) stays.
 */
export function removeKeyFileOf(dir: string, key: DataKey): void {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${dir}/${KEY_FILE}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  const held = keyFileBytes(text);
  if (held && sameBytes(held, key.bytes)) Deno.removeSync(`${dir}/${KEY_FILE}`);
}

/** The data key a key file's `text` holds; `undefined` when it holds none. */
export function keyFileBytes(text: string): Uint8Array | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return fromHex((value as Record<string, unknown> | null)?.[FIELD], 32);
}

/**
 * Reads `<dir>/backup.key`: `undefined` when there is none (a plain backup); refuses one that
 * others may read, that is not a regular file, or that holds no key, each in one line. `url`,
 * backup.lock's `backend_url` where it is known, is named in the rekey that writes it again.
 */
export async function readKeyFile(dir: string, url?: string): Promise<DataKey | undefined> {
  const path = `${dir}/${KEY_FILE}`;
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  if (!info.isFile) {
    throw new Error(
      `Cannot start backup: "${path}" is not a regular file (a symlink?): put the key file ` +
        `itself there`,
    );
  }
  checkSecretMode(KEY_FILE_WHAT, path, "Cannot start backup", info);
  const bytes = keyFileBytes(Deno.readTextFileSync(path));
  if (!bytes) {
    throw new Error(
      `Cannot start backup: "${path}" holds no cln-backup data key: write it again with ` +
        `"${
          cliCommand(
            "rekey",
            url === undefined
              ? "<url> --key-file <lightning-dir>"
              : `${shellQuote(url)} --key-file ${shellQuote(dir)}`,
          )
        }"`,
    );
  }
  return await DataKey.from(bytes);
}
